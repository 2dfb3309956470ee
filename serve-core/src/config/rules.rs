//! The rules of deployment options (placeholder; filled in by the validation step).
