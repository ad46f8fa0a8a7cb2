//! `DATA_DIR/server.json`: how the other commands find the server that owns a data directory.
//!
//! The embedded store and the catalog are locked by the process that opens them, so while
//! `imgsearch serve` runs, `imgsearch index`, `search` or `status` on the same directory cannot
//! open it themselves. The server therefore writes where it listens, its process id and a random
//! token into `server.json` (mode 0600: only its user can read the token), and those commands
//! go through its API instead. The token is accepted besides any configured one, and is the one
//! that allows indexing jobs when no token is configured (see SECURITY.md). The file is removed
//! at a clean stop; one left by a killed server names a process that is gone or an address that
//! does not answer, and the commands then open the directory themselves.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name inside the data directory.
pub const SERVER_FILE: &str = "server.json";

/// What `server.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerFile {
    /// The address to connect to: the bound one, with an unspecified address (`0.0.0.0`)
    /// replaced by loopback.
    pub address: SocketAddr,
    pub pid: u32,
    /// A random token for this run of the server; a new one at every start.
    pub token: String,
    /// The collection the server serves.
    pub collection: String,
    /// The server's version.
    pub version: String,
}

/// Removes `server.json` when dropped, if it is still the one this server wrote.
#[derive(Debug)]
pub struct OwnerGuard {
    path: PathBuf,
    token: String,
}

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        // Another server may have replaced the file after this one lost its directory (it
        // cannot while this one holds the locks, but the check costs nothing).
        if read_file(&self.path).is_some_and(|f| f.token == self.token) {
            if let Err(err) = std::fs::remove_file(&self.path) {
                tracing::warn!(%err, path = %self.path.display(), "cannot remove the server file");
            } else {
                tracing::info!(path = %self.path.display(), "server file removed");
            }
        }
    }
}

/// A fresh random token: 32 bytes from the operating system's generator, as hex.
pub fn random_token() -> std::io::Result<String> {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `data_dir/server.json` for a server listening on `local` (mode 0600, written to a
/// temporary name and renamed, so a reader never sees half a file).
pub fn write(
    data_dir: &Path,
    local: SocketAddr,
    token: &str,
    collection: &str,
) -> std::io::Result<OwnerGuard> {
    let mut address = local;
    if address.ip().is_unspecified() {
        address.set_ip(match local {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let file = ServerFile {
        address,
        pid: std::process::id(),
        token: token.to_string(),
        collection: collection.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let path = data_dir.join(SERVER_FILE);
    let tmp = data_dir.join(format!(".{SERVER_FILE}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = options.open(&tmp)?;
    out.write_all(serde_json::to_string_pretty(&file)?.as_bytes())?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&tmp, &path)?;
    Ok(OwnerGuard {
        path,
        token: token.to_string(),
    })
}

/// Reads `data_dir/server.json`; `None` when there is none or it is not one this version wrote.
pub fn read(data_dir: &Path) -> Option<ServerFile> {
    read_file(&data_dir.join(SERVER_FILE))
}

fn read_file(path: &Path) -> Option<ServerFile> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether process `pid` exists. Where this cannot be told (no `/proc`), it is assumed to, and
/// the caller's check that the address answers decides.
pub fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_private_read_back_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let token = random_token().unwrap();
        assert_eq!(token.len(), 64);
        assert_ne!(token, random_token().unwrap());
        let guard = write(
            dir.path(),
            "0.0.0.0:8080".parse().unwrap(),
            &token,
            "images",
        )
        .unwrap();
        let file = read(dir.path()).unwrap();
        assert_eq!(file.address.to_string(), "127.0.0.1:8080");
        assert_eq!(file.pid, std::process::id());
        assert_eq!(file.token, token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SERVER_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(process_alive(file.pid));
        drop(guard);
        assert!(read(dir.path()).is_none());
        assert!(!dir.path().join(SERVER_FILE).exists());
    }
}
