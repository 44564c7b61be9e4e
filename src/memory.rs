//! Resident memory after start-up. Start-up (config and catalog checks,
//! migrations, recovery, the first rounds of every loop) runs code that a
//! serving process seldom runs again, and the kernel's fault-around keeps
//! 64 KB of a binary resident around every first touch of its code: most of
//! an idle server's resident set was code it ran once. Once serving, opsbot
//! unmaps its code pages (`madvise(MADV_DONTNEED)` on every read-execute
//! mapping of a file): they stay in the page cache, shared and reclaimable,
//! and whatever serving needs is mapped back on its first use (a minor
//! fault, no disk read while the page cache holds it). Only code mappings
//! are touched: private data, writable or relocated, would lose its
//! contents.

/// How long after start-up the code pages are released: the background
/// loops' first rounds (recovery, the first timer and outbox passes) have
/// run by then, and their code is not kept resident for nothing.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// The code mappings of a `/proc/<pid>/maps` text: `(start, end)` of each
/// `r-xp` mapping backed by a file (not `[vdso]` and the like). Pure.
pub fn code_ranges(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            if perms != "r-xp" || !path.starts_with('/') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some((start, end))
        })
        .collect()
}

/// Unmaps this process's code pages (see the module doc); answers the bytes
/// of the mappings released. A no-op answering 0 outside Linux.
pub fn release_code_pages() -> std::io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut released = 0;
        for (start, end) in code_ranges(&maps) {
            // SAFETY: the range is a whole read-execute file mapping of this
            // process, taken from the kernel's own list. Its pages were never
            // written (code is not writable), so dropping them loses nothing:
            // the next access maps the same file page again. No Rust object
            // lives there.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            released += end - start;
        }
        Ok(released)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0b00000 r--p 00000000 fd:01 1234 /usr/local/bin/opsbot
55d0c0b00000-55d0c1800000 r-xp 00100000 fd:01 1234 /usr/local/bin/opsbot
55d0c1800000-55d0c1a00000 r--p 00e00000 fd:01 1234 /usr/local/bin/opsbot
55d0c1a00000-55d0c1a10000 rw-p 01000000 fd:01 1234 /usr/local/bin/opsbot
55d0c2000000-55d0c2100000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 r-xp 00028000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000201000 r-xp 00000000 00:00 0
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
";

    #[test]
    fn only_file_backed_code_mappings_are_released() {
        assert_eq!(
            code_ranges(MAPS),
            vec![(0x55d0c0b00000, 0x55d0c1800000), (0x7f0000000000, 0x7f0000100000)]
        );
    }

    #[test]
    fn releasing_this_process_code_keeps_it_running() {
        let released = release_code_pages().expect("madvise");
        #[cfg(target_os = "linux")]
        assert!(released > 0, "the test binary has code mappings");
        // Code runs again after its pages were dropped.
        assert_eq!(code_ranges(MAPS).len(), 2);
    }
}
