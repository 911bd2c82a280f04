//! Fuzz target: `backend::xl::output`'s readers of `xl list -v`, `xl list`, `xl list -l` and
//! `xl info` on UTF-8 text.
//!
//! Invariants: no panic; a verbose row written back in xl's layout (name in 40 columns, then
//! the fields, then a reason code and a label) reads to the same row; names are never blank
//! nor `(null)`; `xl info`'s version starts with its major and minor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::backend::xl::output::{parse_info, parse_list, parse_long, parse_row, Row};

/// A UUID's octets in the hyphenated form.
fn hyphenated(octets: &[u8; 16]) -> String {
    let hex: String = octets.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The row in `xl list -v`'s layout.
fn render(row: &Row) -> String {
    let info = &row.info;
    let flag = |set: bool, letter: char| if set { letter } else { '-' };
    let reason = if !info.shutdown {
        '-'
    } else {
        match format!("{:?}", info.shutdown_reason).as_str() {
            "Poweroff" => '-',
            "Reboot" => 'r',
            "Suspend" => 's',
            "Crash" => 'c',
            "Watchdog" => 'w',
            "SoftReset" => 'S',
            _ => '?',
        }
    };
    let letters: String = [
        flag(info.running, 'r'),
        flag(info.blocked, 'b'),
        flag(info.paused, 'p'),
        flag(info.shutdown, 's'),
        reason,
        flag(info.dying, 'd'),
    ]
    .iter()
    .collect();
    format!(
        "{:<40} {:>5} {:>5} {:>5}     {letters}  {:>6}.{} {}        -                -",
        row.name.as_deref().unwrap_or("(null)"),
        info.domid,
        info.memory_kib / 1024,
        info.vcpus_online,
        info.cpu_time_ns / 1_000_000_000,
        (info.cpu_time_ns / 100_000_000) % 10,
        hyphenated(&info.uuid)
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    for uuids in [true, false] {
        if let Ok(listing) = parse_list(text, uuids) {
            for row in &listing.rows {
                if let Some(name) = &row.name {
                    assert!(!name.trim().is_empty() && name != "(null)", "{name:?}");
                }
                if uuids && row.info.memory_kib % 1024 == 0 {
                    let written = render(row);
                    let again = parse_row(&written, true)
                        .unwrap_or_else(|| panic!("a written row does not read: {written:?}"));
                    assert_eq!(&again, row, "{written:?}");
                }
            }
        }
    }
    let _ = parse_long(text);
    if let Ok(info) = parse_info(text) {
        assert!(info
            .version()
            .starts_with(&format!("{}.{}", info.major, info.minor)));
    }
});
