//! nginx-free logic of the dynamic upstream module.
