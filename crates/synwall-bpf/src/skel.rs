//! The libbpf-rs skeletons `build.rs` generates for `bpf/edge.bpf.c` and `bpf/backend.bpf.c`,
//! the map value types they derive from BTF, and the checks that both objects agree on them.

use libbpf_rs::OpenObject;
use std::mem::MaybeUninit;

/// Include the skeleton `build.rs` generated into `OUT_DIR` as module `$name`, with the lints
/// that generated code does not follow switched off. The baseline programs' crate uses it too:
/// `synwall_bpf::skeleton!(mod bare_skel = "bare_tx.skel.rs");`.
#[macro_export]
macro_rules! skeleton {
    ($vis:vis mod $name:ident = $file:literal) => {
        #[allow(
            clippy::all,
            clippy::pedantic,
            missing_docs,
            non_camel_case_types,
            non_snake_case,
            non_upper_case_globals,
            dead_code,
            unused_imports
        )]
        $vis mod $name {
            include!(concat!(env!("OUT_DIR"), "/", $file));
        }
    };
}

crate::skeleton!(pub(crate) mod edge_skel = "edge.skel.rs");
crate::skeleton!(pub(crate) mod backend_skel = "backend.skel.rs");

/// The map value types of `bpf/lib/maps.h`, as the skeleton generator derived them from BTF.
pub mod types {
    pub use super::edge_skel::types::{
        sw_auto_state, sw_clock, sw_config, sw_flow_key, sw_port_bitmap, sw_salt_entry, sw_sipkey,
        sw_svc_key, sw_svc_value,
    };
}

// Both objects include maps.h: their generated types must be the same layout. And none of them
// may have implicit padding, since `bytes_of` reads them whole.
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<types::sw_config>() == size_of::<backend_skel::types::sw_config>());
    assert!(size_of::<types::sw_salt_entry>() == size_of::<backend_skel::types::sw_salt_entry>());
    assert!(size_of::<types::sw_clock>() == size_of::<backend_skel::types::sw_clock>());
    assert!(size_of::<types::sw_svc_key>() == size_of::<backend_skel::types::sw_svc_key>());
    assert!(size_of::<types::sw_svc_value>() == size_of::<backend_skel::types::sw_svc_value>());
    assert!(size_of::<types::sw_config>() == 3 * 2 + 8 + 2 + 2 * 16 + 3 * 4);
    assert!(size_of::<types::sw_auto_state>() == 6 * 8 + 2 * 4);
    assert!(size_of::<types::sw_salt_entry>() == 8 + 2 * 16 + 2 * 4);
    assert!(size_of::<types::sw_clock>() == 4 * 8 + 2 * 4);
    assert!(size_of::<types::sw_svc_key>() == 4 + 1 + 16 + 3);
    assert!(size_of::<types::sw_svc_value>() == 4);
    assert!(size_of::<types::sw_flow_key>() == 16 + 16 + 2 + 2 + 1 + 3);
    assert!(size_of::<types::sw_port_bitmap>() == crate::services::BITMAP_WORDS * 8);
};

/// The slot a skeleton's open object lives in (for skeletons of other crates too).
pub fn leak_object() -> &'static mut MaybeUninit<OpenObject> {
    // The skeleton borrows this slot for as long as it lives and closes the object itself when
    // dropped; only the 8-byte slot is leaked.
    Box::leak(Box::new(MaybeUninit::uninit()))
}
