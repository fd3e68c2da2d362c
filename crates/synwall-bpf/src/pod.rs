//! Byte casting between the generated map value types and the bytes libbpf reads and writes.

use crate::types;

/// Marker for the generated map types: `#[repr(C)]`, `Copy`, no implicit padding (checked above).
pub(crate) trait Pod: Copy {}
impl Pod for types::sw_config {}
impl Pod for types::sw_salt_entry {}
impl Pod for types::sw_clock {}
impl Pod for types::sw_svc_key {}
impl Pod for types::sw_svc_value {}
impl Pod for types::sw_flow_key {}
impl Pod for types::sw_auto_state {}
impl Pod for u32 {}

pub(crate) fn from_bytes<T: Pod>(b: &[u8]) -> T {
    assert!(b.len() >= std::mem::size_of::<T>(), "map value too short");
    // SAFETY: `T` is plain old data (any bit pattern is valid: integers only) and `b` holds at
    // least `size_of::<T>()` bytes; the read is unaligned-safe.
    unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) }
}

pub(crate) fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: `T` is a plain-old-data C struct without padding bytes (see `Pod`), so all of its
    // `size_of::<T>()` bytes are initialized.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}
