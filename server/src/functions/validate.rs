//! Validation of submitted functions, with messages a user can act on.

use super::FunctionError;

/// Languages the platform can compile.
pub const SUPPORTED_LANGUAGES: &[&str] = &["assemblyscript"];

const MAX_NAME_CHARS: usize = 255;

pub fn check_language(language: &str) -> Result<(), FunctionError> {
    if SUPPORTED_LANGUAGES.contains(&language) {
        Ok(())
    } else {
        Err(FunctionError::UnsupportedLanguage(language.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct FunctionLimits {
    pub max_source_bytes: usize,
    /// Compilation jobs that may wait, over every process; beyond that a
    /// create or a recompiling update is refused.
    pub compile_backlog: usize,
}

impl FunctionLimits {
    /// The name as stored (trimmed).
    pub fn name(&self, name: &str) -> Result<String, FunctionError> {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            return Err(FunctionError::Invalid("name must not be empty".into()));
        }
        let chars = trimmed.chars().count();
        if chars > MAX_NAME_CHARS {
            return Err(FunctionError::Invalid(format!(
                "name is {chars} characters long; the limit is {MAX_NAME_CHARS}"
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(FunctionError::Invalid(
                "name must not contain control characters".into(),
            ));
        }
        Ok(trimmed.to_string())
    }

    pub fn language(&self, language: &str) -> Result<(), FunctionError> {
        check_language(language)
    }

    /// Any text, up to the source limit, without NUL (which cannot be stored).
    pub fn description(&self, description: &str) -> Result<(), FunctionError> {
        if description.len() > self.max_source_bytes {
            return Err(FunctionError::Invalid(format!(
                "description is {} bytes; the limit is {} bytes",
                description.len(),
                self.max_source_bytes
            )));
        }
        if description.contains('\0') {
            return Err(FunctionError::Invalid(
                "description must not contain NUL characters".into(),
            ));
        }
        Ok(())
    }

    pub fn source(&self, source: &str) -> Result<(), FunctionError> {
        if source.len() > self.max_source_bytes {
            return Err(FunctionError::SourceTooLarge {
                size: source.len(),
                limit: self.max_source_bytes,
            });
        }
        if source.trim().is_empty() {
            return Err(FunctionError::Invalid(
                "source must not be empty: write `export function handle(input: string): string`"
                    .into(),
            ));
        }
        if source.contains('\0') {
            return Err(FunctionError::Invalid(
                "source must not contain NUL characters".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FunctionLimits {
        FunctionLimits {
            max_source_bytes: 10,
            compile_backlog: 10,
        }
    }

    #[test]
    fn names() {
        assert_eq!(limits().name("  add  ").unwrap(), "add");
        assert!(limits().name("   ").is_err());
        assert!(limits().name(&"é".repeat(255)).is_ok());
        assert!(limits().name(&"é".repeat(256)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn names_never_panic_and_are_stored_clean(name in "\\PC{0,300}|.{0,300}|\\s*") {
            if let Ok(stored) = limits().name(&name) {
                proptest::prop_assert_eq!(stored.trim(), stored.as_str());
                proptest::prop_assert!(!stored.is_empty());
                proptest::prop_assert!(stored.chars().count() <= MAX_NAME_CHARS);
                proptest::prop_assert!(!stored.chars().any(char::is_control));
            }
        }

        #[test]
        fn sources_never_panic(source in ".{0,40}|[\\x00-\\x20]{0,12}") {
            let result = limits().source(&source);
            if result.is_ok() {
                proptest::prop_assert!(source.len() <= 10);
                proptest::prop_assert!(!source.trim().is_empty());
                proptest::prop_assert!(!source.contains('\0'));
            }
            let _ = limits().language(&source);
        }
    }

    #[test]
    fn sources_and_languages() {
        assert!(matches!(
            limits().source("01234567890"),
            Err(FunctionError::SourceTooLarge {
                size: 11,
                limit: 10
            })
        ));
        assert!(limits().source(" ").is_err());
        assert!(limits().language("assemblyscript").is_ok());
        assert!(matches!(
            limits().language("rust"),
            Err(FunctionError::UnsupportedLanguage(_))
        ));
    }
}
