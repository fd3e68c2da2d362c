//! A starting node's links, reconciled with what an earlier process left pinned.
//!
//! [`NodeLinks::adopt_or_attach`] takes over every wanted link that is still pinned on its
//! interface and attaches the others; only once all of them are in place does it move the adopted
//! links to the new programs. [`NodeLinks::commit`] then pins the new links (all or none) and
//! removes what an earlier configuration pinned that this one no longer wants. Until `commit`
//! nothing new is pinned, so a start that fails on the way leaves the running programs as they
//! were, and the links it attached detach when dropped.

use super::{Hook, NodePins};
use crate::{Error, Link, Result};
use std::collections::BTreeSet;

/// A link a node wants: its hook on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedLink {
    /// XDP (edge) or tcx ingress (backend).
    pub hook: Hook,
    /// The interface's name (it names the pin).
    pub iface: String,
    /// The interface's index.
    pub ifindex: u32,
}

/// One of a node's links.
#[derive(Debug)]
pub struct NodeLink {
    /// Its hook.
    pub hook: Hook,
    /// Its interface.
    pub iface: String,
    /// Our descriptor of it.
    pub link: Link,
    /// Taken over from a pin an earlier process left (else attached by this one).
    pub adopted: bool,
}

/// The links of a node, adopted or attached by this process.
#[derive(Debug, Default)]
pub struct NodeLinks {
    links: Vec<NodeLink>,
}

fn step(what: String) -> impl FnOnce(Error) -> Error {
    move |e| Error::Link {
        what,
        source: Box::new(e),
    }
}

impl NodeLinks {
    /// Put every wanted link in place, tcx ones first (if an XDP attach then fails, the new tcx
    /// links detach again when dropped). With `pins`, a link pinned there that is still on its
    /// interface is adopted, and a dead pin (the interface went away or was recreated) removed;
    /// every other link is attached with `attach`. Once all are in place, `update` moves each
    /// adopted link to the new program (an atomic swap: no packet meets a detached interface).
    pub fn adopt_or_attach<E: From<Error>>(
        pins: Option<&NodePins>,
        wanted: &[WantedLink],
        mut attach: impl FnMut(&WantedLink) -> std::result::Result<Link, E>,
        mut update: impl FnMut(Hook, &Link) -> Result<()>,
    ) -> std::result::Result<NodeLinks, E> {
        let mut order: Vec<&WantedLink> = wanted.iter().collect();
        order.sort_by_key(|w| w.hook == Hook::Xdp);
        let mut links = Vec::new();
        for w in order {
            if let Some(pins) = pins {
                let path = pins.link(w.hook, &w.iface);
                if let Ok(link) = Link::open_pinned(&path) {
                    if link.ifindex().ok() == Some(w.ifindex) {
                        links.push(NodeLink {
                            hook: w.hook,
                            iface: w.iface.clone(),
                            link,
                            adopted: true,
                        });
                        continue;
                    }
                    let _ = std::fs::remove_file(&path);
                }
            }
            links.push(NodeLink {
                hook: w.hook,
                iface: w.iface.clone(),
                link: attach(w)?,
                adopted: false,
            });
        }
        for l in links.iter().filter(|l| l.adopted) {
            update(l.hook, &l.link).map_err(step(format!(
                "move the {:?} link on {} to the new program",
                l.hook, l.iface
            )))?;
        }
        Ok(NodeLinks { links })
    }

    /// Make the node's state in `pins` match these links: pin the ones attached here (all or
    /// none: if one fails, those pinned a moment ago are unpinned again, so they detach with
    /// this process), then detach and unpin the links an earlier configuration pinned that these
    /// do not include (returned), and remove the map directory of a role none of them serves.
    pub fn commit(&self, pins: &NodePins) -> Result<Vec<(Hook, String)>> {
        let mut pinned_now = Vec::new();
        for l in self.links.iter().filter(|l| !l.adopted) {
            let path = pins.link(l.hook, &l.iface);
            if let Err(e) = l.link.pin(&path) {
                for p in &pinned_now {
                    let _ = std::fs::remove_file(p);
                }
                return Err(step(format!("pin the {:?} link of {}", l.hook, l.iface))(e));
            }
            pinned_now.push(path);
        }
        let keep: BTreeSet<(Hook, &str)> = self
            .links
            .iter()
            .map(|l| (l.hook, l.iface.as_str()))
            .collect();
        let mut stale = Vec::new();
        for (hook, iface, path) in pins.links() {
            if !keep.contains(&(hook, iface.as_str())) {
                if let Ok(l) = Link::open_pinned(&path) {
                    let _ = l.force_detach();
                }
                let _ = std::fs::remove_file(&path);
                stale.push((hook, iface));
            }
        }
        for (hook, dir) in [(Hook::Xdp, pins.edge()), (Hook::Tcx, pins.backend())] {
            if !self.links.iter().any(|l| l.hook == hook) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(stale)
    }

    /// Every link.
    pub fn links(&self) -> &[NodeLink] {
        &self.links
    }

    /// How many were adopted.
    pub fn adopted(&self) -> usize {
        self.links.iter().filter(|l| l.adopted).count()
    }

    /// How many were attached by this process.
    pub fn attached(&self) -> usize {
        self.links.len() - self.adopted()
    }
}
