//! The file store behind attachments: a local directory (embedded mode) or an
//! S3-compatible bucket (production), both through `object_store`, whose `ObjectStore`
//! trait is the seam — the services see only [`FileStore`].

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::DbError;

/// Where attachments' bytes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesConfig {
    /// A directory on this machine (created if missing): `CHAT_ATTACHMENTS_DIR`.
    Local(PathBuf),
    /// An S3-compatible bucket: `CHAT_S3_*`.
    S3(S3Config),
}

/// An S3-compatible bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `CHAT_S3_BUCKET`.
    pub bucket: String,
    /// `CHAT_S3_REGION`.
    pub region: String,
    /// `CHAT_S3_ENDPOINT`: another S3-compatible service (MinIO, …); AWS when unset.
    pub endpoint: Option<String>,
    /// `CHAT_S3_ACCESS_KEY_ID` and `CHAT_S3_SECRET_ACCESS_KEY`; when unset, the usual
    /// `AWS_*` variables or the machine's role.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A stream of a stored file's bytes.
pub type FileStream = BoxStream<'static, Result<Bytes, DbError>>;

/// The file store (cheap to clone).
#[derive(Clone)]
pub struct FileStore {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileStore({})", self.store)
    }
}

fn unavailable(err: object_store::Error) -> DbError {
    DbError::Unavailable(format!("file store: {err}"))
}

impl FileStore {
    /// Opens the store `config` names (a local directory is created if missing).
    pub fn open(config: &FilesConfig) -> Result<Self, DbError> {
        let store: Arc<dyn ObjectStore> = match config {
            FilesConfig::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    DbError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(dir)
                        .map_err(unavailable)?
                        .with_automatic_cleanup(true),
                )
            }
            FilesConfig::S3(s3) => {
                let mut builder = match &s3.credentials {
                    Some((key, secret)) => AmazonS3Builder::new()
                        .with_access_key_id(key)
                        .with_secret_access_key(secret),
                    None => AmazonS3Builder::from_env(),
                }
                .with_bucket_name(&s3.bucket)
                .with_region(&s3.region);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                Arc::new(builder.build().map_err(unavailable)?)
            }
        };
        Ok(FileStore { store })
    }

    /// Stores `bytes` under `key`.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), DbError> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// The bytes under `key`, as a stream; `None` when nothing is stored there.
    pub async fn get(&self, key: &str) -> Result<Option<FileStream>, DbError> {
        match self.store.get(&Path::from(key)).await {
            Ok(found) => Ok(Some(
                found.into_stream().map(|r| r.map_err(unavailable)).boxed(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Whether anything is stored under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, DbError> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Removes everything whose key starts with `prefix/` (path segments: `chats/1`
    /// is not a prefix of `chats/10/…`); returns how many were removed. Goes on past a
    /// key it cannot remove and reports the first failure at the end.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, DbError> {
        if prefix.trim_matches('/').is_empty() {
            return Err(DbError::Unavailable(
                "refusing to empty the whole file store".to_owned(),
            ));
        }
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&Path::from(prefix)))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(unavailable)?;
        let mut removed = 0;
        let mut failed = None;
        for meta in &listed {
            match self.delete(meta.location.as_ref()).await {
                Ok(()) => removed += 1,
                Err(err) => failed = failed.or(Some(err)),
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(removed),
        }
    }

    /// Removes what is under `key` (nothing there is not an error).
    pub async fn delete(&self, key: &str) -> Result<(), DbError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    #[tokio::test]
    async fn a_local_store_keeps_returns_and_forgets_files() -> Result<(), DbError> {
        let dir = std::env::temp_dir().join(format!("chat-files-{}", std::process::id()));
        let store = FileStore::open(&FilesConfig::Local(dir.clone()))?;
        store
            .put("chats/1/abc", Bytes::from_static(b"hello"))
            .await?;
        assert!(store.exists("chats/1/abc").await?);
        let stream = store.get("chats/1/abc").await?;
        let bytes: Vec<Bytes> = match stream {
            Some(stream) => stream.try_collect().await?,
            None => Vec::new(),
        };
        assert_eq!(bytes.concat(), b"hello");
        store.delete("chats/1/abc").await?;
        store.delete("chats/1/abc").await?;
        assert!(!store.exists("chats/1/abc").await?);
        assert!(store.get("chats/1/abc").await?.is_none());
        for key in ["chats/2/a", "chats/2/b", "chats/20/c"] {
            store.put(key, Bytes::from_static(b"x")).await?;
        }
        assert_eq!(store.delete_prefix("chats/2").await?, 2);
        assert!(
            store.delete_prefix("/").await.is_err(),
            "never the whole store"
        );
        assert!(
            store.exists("chats/20/c").await?,
            "another chat's prefix is kept"
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
