//! Pinning in bpffs: how a node's programs outlive the process that loaded them.
//!
//! A node's objects live under one directory (`<pin_root>/<node>`):
//! ```text
//! edge/<map>        maps of the XDP object (sw_counters, sw_config_map, sw_salt_ring, ...)
//! backend/<map>     maps of the tc object
//! links/xdp_<iface> XDP links       links/tcx_<iface> tcx ingress links
//! ```
//! A pinned link keeps its program attached after the process exits; a new process loads its
//! objects on the pinned maps (counters, salts, the strict flow cache carry over) and swaps its
//! program into the pinned links with `bpf_link_update`, so no packet ever meets a detached
//! interface. [`PinnedMaps`] reads the maps without loading anything (`synwall status`).
//! [`NodeLock`] keeps a second process off a node's pins.

mod links;
mod lock;

pub use links::{NodeLink, NodeLinks, WantedLink};
pub use lock::{flock_holder, Holder, NodeLock};

use crate::{bpf, DataPath, Error, LoadOptions, Maps, Result};
use libbpf_rs::{MapCore, MapHandle};
use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// `statfs` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Only our maps are pinned (not libbpf's internal `.rodata`/`.bss`).
const PREFIX: &str = "sw_";

pub(crate) fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Config(format!("path {} has a NUL byte", p.display())))
}

pub(crate) fn os(r: i32, what: &'static str) -> Result<()> {
    if r < 0 {
        Err(Error::Os {
            what,
            source: std::io::Error::from_raw_os_error(-r),
        })
    } else {
        Ok(())
    }
}

pub(crate) fn obj_get(path: &Path, what: &'static str) -> Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: plain syscall wrapper; `c` is NUL-terminated.
    let fd = unsafe { libbpf_rs::libbpf_sys::bpf_obj_get(c.as_ptr()) };
    os(fd, what)?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Is `path` on a bpffs?
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = cpath(path) else { return false };
    // SAFETY: zeroed out-struct, NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    r == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Can pins be made under `root` (which may not exist yet)? Its nearest existing ancestor must be
/// on a bpffs. The error says why not and what to do. `ip netns exec` is the usual cause: it
/// runs its command in a mount namespace of its own with a fresh sysfs over /sys (named after the
/// network namespace), which hides the host's bpffs; the same shows when PID 1 (the host, or
/// the container's init) sees a bpffs where this process does not.
pub fn check_root(root: &Path) -> Result<()> {
    let existing = root
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if is_bpffs(existing) {
        return Ok(());
    }
    let what = if existing == root {
        format!("{} is not on a bpffs", root.display())
    } else {
        format!(
            "{} is not on a bpffs ({} is not one)",
            root.display(),
            existing.display()
        )
    };
    // /proc/1/root resolves paths in PID 1's mount namespace (if this process may look).
    let pid1 = Path::new("/proc/1/root").join(existing.strip_prefix("/").unwrap_or(existing));
    let netns = named_netns();
    let own_sys = netns.as_deref().is_some_and(sys_mounted_for);
    let why = if own_sys {
        Some(format!(
            "this process sees a /sys mounted for network namespace {:?}, as `ip netns exec` \
             sets up",
            netns.as_deref().unwrap_or_default()
        ))
    } else if is_bpffs(&pid1) {
        Some(
            "PID 1 sees a bpffs there and this process a /sys of its own, as `ip netns exec` \
             sets up"
                .to_string(),
        )
    } else {
        None
    };
    let ns = netns.unwrap_or_else(|| "NAME".into());
    Err(Error::Config(match why {
        Some(why) => format!(
            "{what}: {why} (a fresh sysfs over /sys hides the host's bpffs and every pin). Run \
             synwall with `nsenter --net=/run/netns/{ns} synwall ...` instead, which keeps the \
             host's mounts (or mount a bpffs here, `mount -t bpf bpf /sys/fs/bpf`, but pins \
             made there go with this mount namespace when synwall exits, and the programs with \
             them)"
        ),
        None => format!(
            "{what}: mount one (`mount -t bpf bpf /sys/fs/bpf`) or pin under a directory on a \
             bpffs (under `ip netns exec`, which mounts a /sys of its own, run synwall with \
             `nsenter --net=/run/netns/{ns}` instead)"
        ),
    }))
}

/// Is the /sys this process sees the sysfs `ip netns exec` mounts for network namespace `ns`
/// (source `ns`, in /proc/self/mountinfo: `ID PARENT DEV ROOT MOUNTPOINT OPTS... - TYPE SOURCE
/// SUPEROPTS`; of several mounts on /sys the last one is on top)?
fn sys_mounted_for(ns: &str) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some("/sys"))
        .and_then(|l| l.split_once(" - "))
        .is_some_and(|(_, tail)| {
            let mut t = tail.split_whitespace();
            t.next() == Some("sysfs") && t.next() == Some(ns)
        })
}

/// The name under /run/netns of this process's network namespace, if it has one.
fn named_netns() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let ours = id(Path::new("/proc/self/ns/net"))?;
    std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .find(|e| id(&e.path()) == Some(ours))
        .map(|e| e.file_name().to_string_lossy().into_owned())
}

/// The pin layout of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePins {
    /// `<pin_root>/<node>`.
    pub dir: PathBuf,
}

/// Which hook a pinned link is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// The edge's XDP program.
    Xdp,
    /// The backend's tcx ingress program.
    Tcx,
}

impl Hook {
    fn prefix(self) -> &'static str {
        match self {
            Hook::Xdp => "xdp_",
            Hook::Tcx => "tcx_",
        }
    }
}

impl NodePins {
    /// The directory of node `name` under `root` (which must be on a bpffs).
    pub fn new(root: &Path, name: &str) -> NodePins {
        NodePins {
            dir: root.join(name),
        }
    }

    /// Where the edge object's maps are pinned.
    pub fn edge(&self) -> PathBuf {
        self.dir.join("edge")
    }

    /// Where the backend object's maps are pinned.
    pub fn backend(&self) -> PathBuf {
        self.dir.join("backend")
    }

    /// The pin of the link of `hook` on `iface`.
    pub fn link(&self, hook: Hook, iface: &str) -> PathBuf {
        self.dir
            .join("links")
            .join(format!("{}{iface}", hook.prefix()))
    }

    /// Is anything of this node pinned? (Its directory alone, as [`NodePins::lock`] makes it,
    /// holds nothing.)
    pub fn exists(&self) -> bool {
        std::fs::read_dir(&self.dir).is_ok_and(|mut d| d.next().is_some())
    }

    /// Create the directories (the root must be on a bpffs: pins elsewhere are impossible).
    pub fn create(&self) -> Result<()> {
        check_root(self.dir.parent().unwrap_or(Path::new("/")))?;
        for d in [self.edge(), self.backend(), self.dir.join("links")] {
            std::fs::create_dir_all(&d).map_err(|source| Error::Os {
                what: "create the pin directory",
                source,
            })?;
        }
        Ok(())
    }

    /// Every pinned link: (hook, interface name, pin path).
    pub fn links(&self) -> Vec<(Hook, String, PathBuf)> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.dir.join("links")) else {
            return out;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            for hook in [Hook::Xdp, Hook::Tcx] {
                if let Some(iface) = name.strip_prefix(hook.prefix()) {
                    out.push((hook, iface.to_string(), e.path()));
                }
            }
        }
        out.sort();
        out
    }

    /// Detach every pinned link and remove the whole directory. Idempotent.
    pub fn remove(&self) -> Result<()> {
        for (_, _, path) in self.links() {
            if let Ok(l) = crate::Link::open_pinned(&path) {
                // Detach even if a running process still holds the link.
                let _ = l.force_detach();
            }
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Os {
                what: "remove the pin directory",
                source,
            }),
        }
    }
}

/// Before load: pin (or reuse) every map of ours under `dir`.
pub(crate) fn set_pin_paths(obj: &mut libbpf_rs::OpenObject, dir: &Path) -> Result<()> {
    for mut m in obj.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) {
            m.set_pin_path(dir.join(&name))
                .map_err(bpf("set a map's pin path"))?;
        }
    }
    Ok(())
}

/// An object loaded for a node that pins its maps ([`load_pinned`]).
pub struct PinnedObject<T> {
    /// The object.
    pub obj: T,
    /// Its maps came from the pins: an earlier process's state (counters, salts, flow cache).
    pub adopted: bool,
    /// Maps were pinned but did not fit this object, which therefore has fresh maps of its own
    /// (this is why); pin them with [`DataPath::repin_maps`] once its links have moved over.
    pub replaced: Option<Error>,
}

/// Load an object on the maps pinned in `dir` (creating and pinning what is missing). If maps are
/// pinned there but this object does not load on them, and it does load on maps of its own, their
/// layout changed (an upgrade): it gets fresh maps (see [`PinnedObject::replaced`]). If it does
/// not load on fresh maps either, the cause is elsewhere (the kernel, privileges) and that error
/// is the one returned.
pub fn load_pinned<T: DataPath>(opts: &LoadOptions, dir: &Path) -> Result<PinnedObject<T>> {
    let existed = dir.join("sw_config_map").exists();
    match T::load_at(opts, Some(dir)) {
        Ok(obj) => Ok(PinnedObject {
            obj,
            adopted: existed,
            replaced: None,
        }),
        Err(e) if existed => T::load(opts).map(|obj| PinnedObject {
            obj,
            adopted: false,
            replaced: Some(e),
        }),
        Err(e) => Err(e),
    }
}

/// The maps an earlier version pinned for its salts (two slots and the index of the live one),
/// which this version replaced by the ring.
const LEGACY_SALT_MAPS: [&str; 2] = ["sw_salts", "sw_salt_active"];

/// The live salts an earlier version of synwall left pinned in `dir` (its two-slot `sw_salts` and
/// `sw_salt_active`): `(epoch, K_e, K_{e-1})`, so an upgraded node keeps validating the cookies
/// that version issued. `None` when there are none (or they cannot be read).
pub fn legacy_salts(dir: &Path) -> Option<(u64, synwall_cookie::SipKey, synwall_cookie::SipKey)> {
    let open = |n: &str| MapHandle::from_pinned_path(dir.join(n)).ok();
    let (slots, active) = (open(LEGACY_SALT_MAPS[0])?, open(LEGACY_SALT_MAPS[1])?);
    let key0 = 0u32.to_ne_bytes();
    let flags = libbpf_rs::MapFlags::ANY;
    let idx = active.lookup(&key0, flags).ok()??;
    let idx = u32::from_ne_bytes(idx.get(..4)?.try_into().ok()?) & 1;
    let v = slots.lookup(&idx.to_ne_bytes(), flags).ok()??;
    // struct { u64 epoch; u64 k0, k1 (current); u64 k0, k1 (previous) }
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(
            v.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    let key = |i: usize| -> Option<synwall_cookie::SipKey> {
        Some(synwall_cookie::SipKey {
            k0: word(i)?,
            k1: word(i + 1)?,
        })
    };
    Some((word(0)?, key(1)?, key(3)?))
}

/// Maps an earlier version pinned that this version does not use: its auto-mode state with one
/// SYN counter shared by all CPUs (now `sw_auto_window` and the per-CPU `sw_auto_syns`).
const RETIRED_MAPS: [&str; 1] = ["sw_auto_map"];

/// Remove an earlier version's pins from `dir`: its salts (once this version's ring holds them)
/// and the maps this version replaced.
pub fn remove_retired_pins(dir: &Path) {
    for n in LEGACY_SALT_MAPS.iter().chain(&RETIRED_MAPS) {
        let _ = std::fs::remove_file(dir.join(n));
    }
}

/// After a load without pins: pin every map of ours under `dir`, replacing older pins.
pub(crate) fn repin(obj: &mut libbpf_rs::Object, dir: &Path) -> Result<()> {
    for mut m in obj.maps_mut() {
        let name = m.name().to_string_lossy().into_owned();
        if !name.starts_with(PREFIX) {
            continue;
        }
        let path = dir.join(&name);
        let _ = std::fs::remove_file(&path);
        m.pin(&path).map_err(bpf("pin a map"))?;
    }
    Ok(())
}

/// The maps of a pinned object, opened without loading anything.
pub struct PinnedMaps {
    counters: MapHandle,
    config: MapHandle,
    salt_ring: MapHandle,
    clock: MapHandle,
    services: MapHandle,
    ports: MapHandle,
    extra: Vec<(String, MapHandle)>,
}

impl PinnedMaps {
    /// Open the maps pinned in `dir` (e.g. [`NodePins::edge`]).
    pub fn open(dir: &Path) -> Result<PinnedMaps> {
        let open = |name: &str| {
            MapHandle::from_pinned_path(dir.join(name)).map_err(|source| Error::Bpf {
                what: "open a pinned map",
                source,
            })
        };
        let mut extra = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if ![
                    "sw_counters",
                    "sw_config_map",
                    "sw_salt_ring",
                    "sw_clock_map",
                    "sw_services",
                    "sw_ports",
                ]
                .contains(&n.as_str())
                {
                    if let Ok(h) = open(&n) {
                        extra.push((n, h));
                    }
                }
            }
        }
        Ok(PinnedMaps {
            counters: open("sw_counters")?,
            config: open("sw_config_map")?,
            salt_ring: open("sw_salt_ring")?,
            clock: open("sw_clock_map")?,
            services: open("sw_services")?,
            ports: open("sw_ports")?,
            extra,
        })
    }

    fn maps(&self) -> Maps<'_> {
        Maps {
            counters: &self.counters,
            config: &self.config,
            salt_ring: &self.salt_ring,
            clock: &self.clock,
            services: &self.services,
            ports: &self.ports,
        }
    }

    /// The counters summed over CPUs.
    pub fn counters(&self) -> Result<synwall_engine::Counters> {
        self.maps().counters()
    }

    /// The configuration the programs run with.
    pub fn config(&self) -> Result<crate::types::sw_config> {
        self.maps().config()
    }

    /// The salts as the programs see them: the ring and the clock rule.
    pub fn salts(&self) -> Result<synwall_engine::Salts> {
        self.maps().salts()
    }

    /// The clock rule and the daemon's heartbeat (`sw_clock`).
    pub fn clock(&self) -> Result<crate::ClockValue> {
        self.maps().clock()
    }

    /// The edge's auto-mode state (`sw_auto_window`, `sw_auto_syns`), if this object has one.
    pub fn auto_state(&self) -> Option<synwall_engine::AutoState> {
        crate::read_auto_state(self.extra("sw_auto_window")?, self.extra("sw_auto_syns")?).ok()
    }

    /// A pinned map other than the common ones (e.g. `sw_auto_window`), by name.
    pub fn extra(&self, name: &str) -> Option<&MapHandle> {
        self.extra.iter().find(|(n, _)| n == name).map(|(_, h)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_pins_go_and_this_versions_stay() {
        let dir = std::env::temp_dir().join(format!("synwall-retired-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let names = [
            "sw_auto_map",
            "sw_salts",
            "sw_salt_active",
            "sw_auto_window",
            "sw_auto_syns",
            "sw_counters",
        ];
        for n in names {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        remove_retired_pins(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(left, ["sw_auto_syns", "sw_auto_window", "sw_counters"]);
    }
}
