//! File contents, stored once per content hash: a task names its file's blob instead of
//! carrying the file, so ten TODOs in one file cost one copy.

use super::keys;
use super::{BATCH, Queue, QueueError};

impl Queue {
    /// Stores files' contents once per content hash (`(hash, content)` pairs); workers read
    /// the block's context from them.
    pub async fn put_blobs(&self, blobs: &[(&str, &str)]) -> Result<(), QueueError> {
        let mut c = self.conn();
        for chunk in blobs.chunks(BATCH) {
            let mut p = redis::pipe();
            for (hash, content) in chunk {
                p.cmd("SET")
                    .arg(keys::blob(hash))
                    .arg(*content)
                    .arg("EX")
                    .arg(self.retention_secs)
                    .ignore();
            }
            let _: () = p.query_async(&mut c).await?;
        }
        Ok(())
    }

    pub async fn get_blob(&self, hash: &str) -> Result<Option<String>, QueueError> {
        let mut c = self.conn();
        Ok(redis::cmd("GET")
            .arg(keys::blob(hash))
            .query_async(&mut c)
            .await?)
    }
}
