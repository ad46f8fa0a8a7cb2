//! Index structures.
