//! Decrypted profiles kept in memory by workers, so a job does not cost a
//! database round trip and a decryption. Entries leave on a profile event,
//! on a broker reconnect (events may have been missed), or after a TTL as a
//! last line of defence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::AuthProfile;

pub struct ProfileCache {
    entries: Mutex<HashMap<Uuid, (Arc<AuthProfile>, Instant)>>,
    ttl: Duration,
}

impl ProfileCache {
    pub fn new(ttl: Duration) -> Self {
        Self { entries: Mutex::default(), ttl }
    }

    /// A cached profile of this workspace. Another workspace's id is a miss,
    /// and the store will answer it with "not found".
    pub fn get(&self, workspace_id: &str, id: Uuid) -> Option<Arc<AuthProfile>> {
        let mut entries = self.entries.lock().expect("profile cache lock");
        let (profile, loaded) = entries.get(&id)?;
        if loaded.elapsed() > self.ttl {
            entries.remove(&id);
            return None;
        }
        (profile.workspace_id == workspace_id).then(|| profile.clone())
    }

    /// Stores a profile unless a newer version is already cached.
    pub fn insert(&self, profile: Arc<AuthProfile>) {
        let mut entries = self.entries.lock().expect("profile cache lock");
        match entries.get(&profile.id) {
            Some((cached, _)) if cached.version > profile.version => {}
            _ => {
                entries.insert(profile.id, (profile, Instant::now()));
            }
        }
    }

    pub fn invalidate(&self, id: Uuid) {
        self.entries.lock().expect("profile cache lock").remove(&id);
    }

    pub fn clear(&self) {
        self.entries.lock().expect("profile cache lock").clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("profile cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
