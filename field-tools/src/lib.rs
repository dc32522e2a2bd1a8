//! field-tools
