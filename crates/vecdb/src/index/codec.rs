//! The index bodies (`to_bytes` / `from_bytes`) use the shared little-endian codec.
//!
//! The bodies carry no magic, version or checksum of their own: the snapshot file that holds
//! them does. Reads return `common::le::DecodeError`, which converts into the `String` errors of
//! the index decoders, because the bytes come from disk and may be truncated or corrupt.

pub(crate) use common::le::{Reader, Writer};
