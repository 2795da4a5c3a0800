//! Content cache of compiled modules, shared by all workers through the
//! `compiled_modules` table: the same (language, source, compiler version,
//! flags) reuses its module without running the compiler.

use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, Set};
use sha2::{Digest, Sha256};

use entity::compiled_module;

/// Key over everything that determines the compiler's output.
pub fn cache_key(language: &str, source: &str, compiler_version: &str, flags: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [language, compiler_version, flags, source] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub async fn lookup(db: &DatabaseConnection, key: &str) -> Result<Option<Vec<u8>>, DbErr> {
    Ok(compiled_module::Entity::find_by_id(key.to_string())
        .one(db)
        .await?
        .map(|m| m.wasm_binary))
}

pub async fn store(db: &DatabaseConnection, key: &str, wasm: &[u8]) -> Result<(), DbErr> {
    let model = compiled_module::ActiveModel {
        cache_key: Set(key.to_string()),
        wasm_binary: Set(wasm.to_vec()),
        created_at: Set(chrono::Utc::now()),
    };
    compiled_module::Entity::insert(model)
        .on_conflict(
            OnConflict::column(compiled_module::Column::CacheKey)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_every_input() {
        let base = cache_key("assemblyscript", "src", "v1", "-O");
        assert_eq!(base, cache_key("assemblyscript", "src", "v1", "-O"));
        assert_ne!(base, cache_key("assemblyscript", "src2", "v1", "-O"));
        assert_ne!(base, cache_key("assemblyscript", "src", "v2", "-O"));
        assert_ne!(base, cache_key("assemblyscript", "src", "v1", "-O3"));
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        assert_ne!(cache_key("a", "bc", "", ""), cache_key("ab", "c", "", ""));
    }
}
