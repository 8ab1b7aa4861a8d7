//! The text of the `dyups_upstream_conf` file, rendered upstream by
//! upstream and kept between changes.
//!
//! Every accepted change writes the whole file (see
//! [`crate::ops::state_files`]). Rendering every run-time upstream for each
//! change cost about 2 ms per 1,000 upstreams in the worker's event loop
//! (creating 10,000 one at a time took 120 s; hunt 22 F2). A record's block
//! depends only on the record, whose version every change bumps, so each
//! worker keeps the blocks it rendered by name and version and renders
//! only the records that changed since its last write: a change then costs
//! a walk of the registry's names and versions and the write of the file.
//!
//! The blocks hold no pointer into nginx's memory. A new cycle in the same
//! process (`master_process off`'s reload) may come with a new registry
//! whose versions start again: [`forget`] drops every block then. They are
//! kept in a plain static, not a `thread_local!`: a thread-local with a
//! destructor, once touched (init_module runs in the master), makes glibc
//! keep the module loaded for the master's life, so a reload that drops
//! `load_module` no longer unloads it, and a reinstalled file is never
//! loaded (review 23).

use std::collections::HashMap;
use std::sync::Mutex;

use dynamic_upstream_core::dyups::UpstreamSpec;
use dynamic_upstream_core::state::{render_dyups_entry, specs_of, DyupsEntry, HEADER};

use crate::dyups::registry::{Dyups, ReadSection, RecordView};

/// One upstream's block, as of a version of its record.
struct Block {
    version: u64,
    text: String,
    /// The write that last found the record (see [`Blocks::render`]).
    write: u64,
}

#[derive(Default)]
struct Blocks {
    by_name: HashMap<Vec<u8>, Block>,
    writes: u64,
}

/// This process's blocks (nginx's thread is the only one that writes the
/// file: the mutex is never contended).
static BLOCKS: Mutex<Option<Blocks>> = Mutex::new(None);

/// The file's text for the registry as `section` reads it.
pub fn render(dyups: &Dyups<'_>, section: &ReadSection) -> Result<String, String> {
    let mut blocks = BLOCKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    blocks.get_or_insert_with(Blocks::default).render(dyups, section)
}

/// Drops every block (a new cycle: see the module comment).
pub fn forget() {
    *BLOCKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}

impl Blocks {
    fn render(&mut self, dyups: &Dyups<'_>, section: &ReadSection) -> Result<String, String> {
        self.writes += 1;
        let write = self.writes;
        let versions = dyups.versions(section);
        for record in &versions {
            match self.by_name.get_mut(record.name()) {
                Some(block) if block.version == record.version => block.write = write,
                _ => {
                    // Changed since (or new): rendered from the record as it
                    // is now. A record deleted meanwhile is left out (the
                    // change that deleted it writes the file next).
                    let name = String::from_utf8_lossy(record.name());
                    let Some(view) = dyups.record(section, &name) else { continue };
                    let text = render_dyups_entry(&entry_of(&view)?);
                    self.by_name.insert(record.name().to_vec(), Block { version: view.version, text, write });
                }
            }
        }
        self.by_name.retain(|_, block| block.write == write);
        let blocks: Vec<&Block> = versions.iter().filter_map(|r| self.by_name.get(r.name())).collect();
        let mut out = String::with_capacity(HEADER.len() + blocks.iter().map(|b| b.text.len()).sum::<usize>());
        out.push_str(HEADER);
        for block in blocks {
            out.push_str(&block.text);
        }
        Ok(out)
    }
}

/// The file's entry for a record: its upstream, or the tombstone of a
/// configuration upstream deleted through the API.
fn entry_of(record: &RecordView<'_>) -> Result<DyupsEntry, String> {
    if record.deleted || !record.has_list() {
        return Ok(DyupsEntry::Deleted(record.name.clone()));
    }
    let servers = specs_of(&record.peers())?;
    let spec = UpstreamSpec { balancer: record.balancer.clone(), servers, check: record.check() };
    Ok(DyupsEntry::Upstream(record.name.clone(), spec))
}
