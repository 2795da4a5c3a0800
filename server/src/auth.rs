//! Access control: API keys, off unless `PROJECTNIL_API_KEYS` is set. Only
//! SHA-256 digests of the keys are kept in memory, and neither keys nor digests
//! are ever logged or printed (`Debug` shows only how many there are).

use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl std::str::FromStr for ApiKeys {
    type Err = String;

    /// Comma-separated keys; surrounding blanks are ignored.
    fn from_str(list: &str) -> Result<Self, String> {
        let digests: Vec<[u8; 32]> = list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(digest)
            .collect();
        if digests.is_empty() {
            return Err("PROJECTNIL_API_KEYS is set but holds no key".into());
        }
        Ok(Self { digests })
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Outcome of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Missing,
    Wrong,
}

impl Verdict {
    pub fn message(self) -> &'static str {
        match self {
            Verdict::Allowed => "",
            Verdict::Missing => "an API key is required: send `Authorization: Bearer <key>`",
            Verdict::Wrong => "the API key is not valid",
        }
    }
}

impl ApiKeys {
    /// Checks an `Authorization` value (`Bearer <key>`).
    pub fn check(&self, authorization: Option<&str>) -> Verdict {
        let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
            return Verdict::Missing;
        };
        let key = match value.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key.trim(),
            _ => return Verdict::Wrong,
        };
        let presented = digest(key);
        // Compare digests in constant time, and with every key, so timing
        // says nothing about them.
        use subtle::ConstantTimeEq as _;
        let matched = self
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |found, known| {
                found | known[..].ct_eq(&presented[..])
            });
        if bool::from(matched) {
            Verdict::Allowed
        } else {
            Verdict::Wrong
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_bearer_keys() {
        let keys: ApiKeys = " alpha , beta,".parse().unwrap();
        assert_eq!(keys.check(Some("Bearer alpha")), Verdict::Allowed);
        assert_eq!(keys.check(Some("bearer beta")), Verdict::Allowed);
        assert_eq!(keys.check(Some("Bearer gamma")), Verdict::Wrong);
        assert_eq!(keys.check(Some("alpha")), Verdict::Wrong);
        assert_eq!(keys.check(Some("Basic alpha")), Verdict::Wrong);
        assert_eq!(keys.check(None), Verdict::Missing);
        assert_eq!(keys.check(Some("  ")), Verdict::Missing);
        assert!("".parse::<ApiKeys>().is_err());
        assert!(!format!("{keys:?}").contains("alpha"));
    }
}
