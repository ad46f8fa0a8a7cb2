//! Distance kernels.
