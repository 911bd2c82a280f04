//! The VM's own identity: its Xen VM UUID, as the guest can see it.
//!
//! PV and PVH guests see it in /sys/hypervisor/uuid, HVM guests there and in the SMBIOS
//! product UUID; dom0 sees the nil UUID there, which is refused (dom0 is a host, not a VM).

use crate::error::{Error, Result};
use std::path::Path;
use uuid::Uuid;

/// Where a guest finds its VM UUID, in the order tried.
pub const UUID_SOURCES: [&str; 2] = ["/sys/hypervisor/uuid", "/sys/class/dmi/id/product_uuid"];

/// The VM UUID: `explicit` (from `--uuid`) if given, else the first of `sources` that holds a
/// UUID. The nil UUID, or nothing at all, is an error naming everything tried.
pub fn resolve(explicit: Option<&str>, sources: &[&str]) -> Result<Uuid> {
    if let Some(text) = explicit {
        let uuid = Uuid::parse_str(text.trim())
            .map_err(|_| Error::config(format!("--uuid {text:?} is not a UUID")))?;
        if uuid.is_nil() {
            return Err(Error::config("--uuid is the nil UUID, which no VM has"));
        }
        return Ok(uuid);
    }
    let mut tried = Vec::new();
    for source in sources {
        match std::fs::read_to_string(Path::new(source)) {
            Ok(text) => match Uuid::parse_str(text.trim()) {
                Ok(uuid) if uuid.is_nil() => {
                    tried.push(format!("{source} (the nil UUID: this is dom0, not a VM)"))
                }
                Ok(uuid) => return Ok(uuid),
                Err(_) => tried.push(format!("{source} (not a UUID: {:?})", text.trim())),
            },
            Err(error) => tried.push(format!("{source} ({error})")),
        }
    }
    Err(Error::config(format!(
        "cannot tell this VM's UUID: tried --uuid (not given), {}",
        tried.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> String {
        let path =
            std::env::temp_dir().join(format!("xenplug-identity-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn explicit_uuid_wins_and_is_checked() {
        let uuid = "6f1c1f3e-8a53-4a8e-9a7d-1d2f3c4b5a60";
        assert_eq!(resolve(Some(uuid), &[]).unwrap().to_string(), uuid);
        assert!(resolve(Some("nope"), &[]).is_err());
        assert!(resolve(Some("00000000-0000-0000-0000-000000000000"), &[]).is_err());
    }

    #[test]
    fn sources_are_tried_in_order_and_dom0_is_refused() {
        let dom0 = file("dom0", "00000000-0000-0000-0000-000000000000\n");
        let hvm = file("hvm", "6F1C1F3E-8A53-4A8E-9A7D-1D2F3C4B5A60\n");
        let missing = "/nonexistent/xenplug/uuid";
        let uuid = resolve(None, &[missing, dom0.as_str(), hvm.as_str()]).unwrap();
        assert_eq!(uuid.to_string(), "6f1c1f3e-8a53-4a8e-9a7d-1d2f3c4b5a60");
        let error = resolve(None, &[missing, dom0.as_str()])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(missing) && error.contains("nil UUID: this is dom0"),
            "{error}"
        );
        std::fs::remove_file(dom0).unwrap();
        std::fs::remove_file(hvm).unwrap();
    }
}
