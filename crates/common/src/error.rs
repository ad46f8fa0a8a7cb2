//! The shared classification of errors.
//!
//! Each crate keeps its own error enum (the variants carry the facts of that layer), and
//! implements [`Classified`] next to it, so the decision "whose fault is this and what is it
//! called" is made once, where the error is made. Surfaces read only the [`Class`]: the server
//! turns `kind` into an HTTP status and shows `code`; the CLI turns `kind` and `origin` into an
//! exit code.

/// What kind of failure an error is, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request cannot be carried out as given; nothing changed, and the caller can fix it.
    InvalidInput,
    /// A named thing (image, collection, file, path) does not exist.
    NotFound,
    /// The request is fine but the state it meets disagrees (the name is taken, the collection
    /// was made by another model).
    Conflict,
    /// A service the request depends on cannot be reached now; retrying later may work.
    Unavailable,
    /// A fault of the program, its files or its model; the caller cannot fix it.
    Internal,
}

impl ErrorKind {
    /// A lower-case name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind [`ErrorKind::as_str`] names.
    pub fn parse(s: &str) -> Option<ErrorKind> {
        [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Which part of the system an error concerns: the request itself, the model, the vector store
/// or catalog, a file the program reads or writes, or the configuration. The CLI's exit codes
/// tell these apart so that scripts can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The request or the data it carries (a parameter, an image, a vector).
    Request,
    /// The embedding model, its manifest or its projection head.
    Model,
    /// The vector store or the catalog of indexed files.
    Store,
    /// A file the program reads or writes on the user's behalf.
    File,
    /// The configuration (a store URL, a config key).
    Config,
}

impl Origin {
    /// A lower-case name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Request => "request",
            Origin::Model => "model",
            Origin::Store => "store",
            Origin::File => "file",
            Origin::Config => "config",
        }
    }

    /// The origin [`Origin::as_str`] names.
    pub fn parse(s: &str) -> Option<Origin> {
        [
            Origin::Request,
            Origin::Model,
            Origin::Store,
            Origin::File,
            Origin::Config,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// The classification of one error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Class {
    pub kind: ErrorKind,
    pub origin: Origin,
    /// The stable machine-readable code the HTTP API shows (part of the API: never changed once
    /// published). Errors of kind `Internal` all show `internal`, so that no detail of a server
    /// fault leaks through the code.
    pub code: &'static str,
}

impl Class {
    /// A classification; `Internal` errors get the code `internal` whatever is asked.
    pub const fn new(kind: ErrorKind, origin: Origin, code: &'static str) -> Class {
        let code = match kind {
            ErrorKind::Internal => "internal",
            _ => code,
        };
        Class { kind, origin, code }
    }

    /// The caller's bad input, shown with the generic `invalid_parameter` code.
    pub const fn invalid(origin: Origin) -> Class {
        Class::new(ErrorKind::InvalidInput, origin, "invalid_parameter")
    }

    /// A fault of the program in `origin`.
    pub const fn internal(origin: Origin) -> Class {
        Class::new(ErrorKind::Internal, origin, "internal")
    }
}

/// An error that knows its classification.
pub trait Classified: std::error::Error {
    fn class(&self) -> Class;

    /// Shorthand for `self.class().kind`.
    fn kind(&self) -> ErrorKind {
        self.class().kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
        }
        for o in [
            Origin::Request,
            Origin::Model,
            Origin::Store,
            Origin::File,
            Origin::Config,
        ] {
            assert_eq!(Origin::parse(o.as_str()), Some(o));
        }
        assert_eq!(ErrorKind::parse("nope"), None);
    }

    #[test]
    fn internal_errors_never_show_a_specific_code() {
        let c = Class::new(ErrorKind::Internal, Origin::Store, "store_error");
        assert_eq!(c.code, "internal");
        let c = Class::new(ErrorKind::NotFound, Origin::Store, "unknown_collection");
        assert_eq!(c.code, "unknown_collection");
    }
}
