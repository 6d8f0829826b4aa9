//! `--data-dir`: every write goes through to an embedded redb database before it is
//! acknowledged, so a restarted (even kill -9'd) simulated cluster comes back with every object,
//! the same resourceVersion counter and the same ServiceAccount signing key.

use std::{path::Path, sync::Arc};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;

use crate::store::{Key, Persistence, Store};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

fn encode_key(key: &Key) -> String {
    format!("{}\u{0}{}\u{0}{}", key.resource, key.namespace, key.name)
}

fn decode_key(s: &str) -> Option<Key> {
    let mut parts = s.split('\u{0}');
    Some(Key::new(parts.next()?, parts.next()?, parts.next()?))
}

struct Redb(Arc<Database>);

impl Persistence for Redb {
    fn record(&self, key: &Key, object: Option<&Value>, rv: u64) -> Result<(), String> {
        let txn = self.0.begin_write().map_err(|e| e.to_string())?;
        {
            let mut objects = txn.open_table(OBJECTS).map_err(|e| e.to_string())?;
            let k = encode_key(key);
            match object {
                Some(o) => {
                    let bytes = serde_json::to_vec(o).map_err(|e| e.to_string())?;
                    objects
                        .insert(k.as_str(), bytes.as_slice())
                        .map_err(|e| e.to_string())?;
                }
                None => {
                    objects.remove(k.as_str()).map_err(|e| e.to_string())?;
                }
            }
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            meta.insert("rv", rv.to_be_bytes().as_slice())
                .map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }
}

/// Opens (or creates) the database under `dir`: the restored store, the ServiceAccount token
/// key, and whether the store is new (and needs seeding).
pub fn open(dir: &Path, history_limit: usize) -> Result<(Store, Vec<u8>, bool), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("cluster.redb");
    let db = Database::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let db = Arc::new(db);
    let mut objects = Vec::new();
    let mut rv = 1u64;
    let key;
    {
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            if let Some(v) = meta.get("rv").map_err(|e| e.to_string())? {
                let bytes: [u8; 8] = v.value().try_into().unwrap_or([0; 8]);
                rv = u64::from_be_bytes(bytes);
            }
            let existing = meta
                .get("sa-key")
                .map_err(|e| e.to_string())?
                .map(|v| v.value().to_vec());
            key = match existing {
                Some(k) => Some(k),
                None => {
                    let mut k = uuid::Uuid::new_v4().as_bytes().to_vec();
                    k.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
                    meta.insert("sa-key", k.as_slice()).map_err(|e| e.to_string())?;
                    Some(k)
                }
            };
            txn.open_table(OBJECTS).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())?;
    }
    {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let table = txn.open_table(OBJECTS).map_err(|e| e.to_string())?;
        for entry in table.iter().map_err(|e| e.to_string())? {
            let (k, v) = entry.map_err(|e| e.to_string())?;
            let Some(key) = decode_key(k.value()) else {
                continue;
            };
            let object: Value = serde_json::from_slice(v.value()).map_err(|e| e.to_string())?;
            objects.push((key, object));
        }
    }
    let fresh = objects.is_empty();
    let store = Store::restored(history_limit, objects, rv, Box::new(Redb(db)));
    Ok((store, key.unwrap_or_default(), fresh))
}
