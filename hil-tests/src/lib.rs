//! hil
