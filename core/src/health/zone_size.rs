//! How many records a health zone (`check_shm_size`) holds, and the size
//! that holds a given number: from the pages nginx's slab allocator left
//! free in the zone (its bookkeeping takes a share that grows with the
//! size). The record table is one allocation of whole pages.

/// A zone as nginx's slab allocator laid it out, nothing allocated yet.
#[derive(Debug, Clone, Copy)]
pub struct SlabLayout {
    /// The zone's size (`check_shm_size`), in bytes.
    pub size: usize,
    /// Its free pages (`ngx_slab_pool_t.pfree`): one run, in a new zone.
    pub free_pages: usize,
    /// `ngx_pagesize`.
    pub page_size: usize,
    /// The slab's bookkeeping of one page (`sizeof(ngx_slab_page_t)`).
    pub page_header: usize,
}

/// The records of `record` bytes each, after a table header of `header`
/// bytes, that fit in the free pages.
pub fn records_in(layout: SlabLayout, header: usize, record: usize) -> usize {
    (layout.free_pages * layout.page_size).saturating_sub(header) / record.max(1)
}

/// A zone size, in KiB, that holds `wanted` records: each page more costs
/// the page and its bookkeeping, plus one page for the alignment of the
/// pages' start.
pub fn kib_for(layout: SlabLayout, header: usize, record: usize, wanted: usize) -> usize {
    let pages = (header + wanted * record).div_ceil(layout.page_size.max(1));
    let more = pages.saturating_sub(layout.free_pages) + 1;
    (layout.size + more * (layout.page_size + layout.page_header)).div_ceil(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nginx's ngx_slab_init, modelled: the pool's header, its 9 size
    /// classes' page headers and statistics (page shift 12 minus the
    /// smallest shift 3), one page header per page, then the pages from
    /// the next page boundary.
    fn laid_out(size: usize) -> SlabLayout {
        let (page_size, page_header, fixed) = (4096, 24, 200 + 9 * 24 + 9 * 32);
        let mut pages = (size - fixed) / (page_size + page_header);
        let start = (fixed + pages * page_header).div_ceil(page_size) * page_size;
        pages = pages.min((size - start) / page_size);
        SlabLayout { size, free_pages: pages, page_size, page_header }
    }

    #[test]
    fn the_size_named_holds_the_records() {
        for wanted in [58, 59, 80, 2500, 8000, 100_000] {
            for size in [32 * 1024, 1 << 20] {
                if records_in(laid_out(size), 16, 520) >= wanted {
                    continue;
                }
                let kib = kib_for(laid_out(size), 16, 520, wanted);
                assert!(records_in(laid_out(kib * 1024), 16, 520) >= wanted, "{wanted} from {size}: {kib}k");
                // And not much more than needed: within two pages.
                let pages = (16 + wanted * 520).div_ceil(4096);
                assert!(laid_out(kib * 1024).free_pages <= pages + 3, "{wanted} from {size}: {kib}k");
            }
        }
    }

    #[test]
    fn a_zone_without_room_holds_nothing() {
        let layout = SlabLayout { size: 8192, free_pages: 0, page_size: 4096, page_header: 24 };
        assert_eq!(records_in(layout, 16, 520), 0);
        assert_eq!(records_in(SlabLayout { free_pages: 1, ..layout }, 16, 520), 7);
    }
}
