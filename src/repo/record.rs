//! Repository records: what the tracker keeps about each hypervisor and VM, and their
//! `key=value` text. Pure: no file I/O, no clock; [`Repository`](super::Repository) reads and
//! writes the files.
//!
//! # Records
//!
//! First line [`REPO_FORMAT_LINE`], then `key=value` lines whose values are escaped with
//! [`escape_value`](crate::files::escape_value) (no whitespace or control character survives
//! it; `=` stays, since a line is split at its first `=` and keys never hold one). Lists use
//! numbered keys counted from 0 with no gap: `address.0=`, `address.1=`; `service.0.type=`,
//! `service.0.action.0.name=`, `service.0.action.0.semantics=idempotent,confirm` (tokens of
//! [`Semantic`], comma-separated, key left out when there are none). Host facts are
//! `fact.<name>=` in the order given. An absent optional field is an absent key. Unknown plain
//! keys are ignored (a later version may add some); an unknown key inside a numbered family, a
//! gap, or a malformed index is an error.
//!
//! Hardware example:
//!
//! ```text
//! # xenplug-repo 1
//! host_uuid=4c4c4544-0042-3510-8052-b4c04f4e4b31
//! name=dom0\x20rack\x203
//! network=mgmt
//! state=online
//! boot_id=7
//! first_seen=1700000000
//! last_seen=1700000600
//! address.0=10.0.0.5
//! fact.cpus=16
//! ```

use std::collections::BTreeMap;
use std::io;

use uuid::Uuid;

use crate::consts::{REPO_FORMAT_LINE, REPO_MAX_NAME, REPO_MAX_RECORD};
use crate::files::Record;
use crate::model::Semantic;

/// What [`REPO_FORMAT_LINE`] starts with whatever the version: a record whose first line
/// starts so but names another version was written by another xenplug and is not touched.
const REPO_FORMAT_PREFIX: &str = "# xenplug-repo ";

// Record keys. Format details of this module, not shared names, so they stay here.
const KEY_HOST_UUID: &str = "host_uuid";
const KEY_VM_UUID: &str = "vm_uuid";
const KEY_NAME: &str = "name";
const KEY_NETWORK: &str = "network";
const KEY_STATE: &str = "state";
const KEY_BOOT_ID: &str = "boot_id";
const KEY_FIRST_SEEN: &str = "first_seen";
const KEY_LAST_SEEN: &str = "last_seen";
/// The provider-private placement key, which a tenant slice never holds.
pub(super) const KEY_HYPERVISOR: &str = "hypervisor";
const KEY_RUN_STATE: &str = "run_state";
const KEY_TENANT: &str = "tenant";
const PREFIX_ADDRESS: &str = "address.";
const PREFIX_FACT: &str = "fact.";
const PREFIX_SERVICE: &str = "service.";
const SUBKEY_TYPE: &str = "type";
const PREFIX_ACTION: &str = "action.";
const SUBKEY_ACTION_NAME: &str = "name";
const SUBKEY_SEMANTICS: &str = "semantics";
const SUBKEY_INPUTS: &str = "in";
const SUBKEY_OUTPUTS: &str = "out";
/// Separator of the argument names in `in` and `out` (SCPD argument names never hold it).
const ARGUMENTS_SEPARATOR: char = ',';
const SEMANTICS_SEPARATOR: char = ',';
const SEMANTICS: [Semantic; 3] = [
    Semantic::Idempotent,
    Semantic::Destructive,
    Semantic::Confirm,
];

/// Whether `name` may be a tenant name (hence a folder name), a host fact name or an event
/// detail key: 1 to [`REPO_MAX_NAME`] characters of `[A-Za-z0-9_-]`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=REPO_MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `uuid` as a file name: lower-case, hyphenated.
pub(super) fn file_name(uuid: &Uuid) -> String {
    uuid.hyphenated().to_string()
}

/// Parses a UUID only in its canonical form (lower-case, hyphenated), the form file names use.
pub(super) fn parse_canonical_uuid(text: &str) -> Result<Uuid, String> {
    match Uuid::parse_str(text) {
        Ok(uuid) if file_name(&uuid) == text => Ok(uuid),
        _ => Err(format!("{text:?} is not a lower-case hyphenated UUID")),
    }
}

/// Parses a decimal number written only with digits (no sign, no spaces).
pub(super) fn parse_number<T: std::str::FromStr>(key: &str, text: &str) -> Result<T, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key}: {text:?} is not a decimal number"));
    }
    text.parse()
        .map_err(|_| format!("{key}: {text:?} is out of range"))
}

/// Groups the entries whose key starts with `prefix` by the index that follows it:
/// `address.0` -> group 0 with sub-key `""`, `service.1.action.0.name` -> group 1 with
/// sub-key `action.0.name`. Indices are canonical decimals counted from 0 without a gap.
fn numbered<'a>(
    entries: impl Iterator<Item = (&'a str, &'a str)>,
    prefix: &str,
) -> Result<Vec<Vec<(&'a str, &'a str)>>, String> {
    let mut groups: BTreeMap<usize, Vec<(&'a str, &'a str)>> = BTreeMap::new();
    for (key, value) in entries {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let (index, sub_key) = rest.split_once('.').unwrap_or((rest, ""));
        let canonical = index == "0" || !index.starts_with('0');
        let index: usize = match parse_number(key, index) {
            Ok(index) if canonical => index,
            _ => return Err(format!("{key}: bad index after {prefix}")),
        };
        groups.entry(index).or_default().push((sub_key, value));
    }
    for (expected, index) in groups.keys().enumerate() {
        if expected != *index {
            return Err(format!("{prefix}{expected} is missing"));
        }
    }
    Ok(groups.into_values().collect())
}

/// One hypervisor in the hardware configuration repository (`hardware/<host-uuid>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HardwareRecord {
    /// The host's UUID, the hypervisor device's UDN without `uuid:` (`host_uuid`).
    pub host_uuid: Uuid,
    /// The hypervisor's name (`name`).
    pub name: String,
    /// Addresses it was seen at, in order (`address.N`).
    pub addresses: Vec<String>,
    /// Label of the network it advertises in (`network`).
    pub network: String,
    /// Its last BOOTID.UPNP.ORG, if it sent one (`boot_id`).
    pub boot_id: Option<u32>,
    /// Host facts such as `cpus`, `memory_mib`, `hypervisor_version`, `backend`, in order;
    /// names follow [`is_valid_name`] and are distinct (`fact.<name>`).
    pub facts: Vec<(String, String)>,
    /// Unix time it was first seen (`first_seen`).
    pub first_seen: u64,
    /// Unix time it was last seen (`last_seen`).
    pub last_seen: u64,
    /// `online` or `offline` (`state`).
    pub state: String,
}

impl HardwareRecord {
    /// The record's `key=value` form; refuses an invalid or repeated fact name.
    pub fn to_record(&self) -> Result<Record, String> {
        let mut record = Record::default();
        record.set(KEY_HOST_UUID, file_name(&self.host_uuid));
        record.set(KEY_NAME, self.name.as_str());
        record.set(KEY_NETWORK, self.network.as_str());
        record.set(KEY_STATE, self.state.as_str());
        if let Some(boot_id) = self.boot_id {
            record.set(KEY_BOOT_ID, boot_id.to_string());
        }
        record.set(KEY_FIRST_SEEN, self.first_seen.to_string());
        record.set(KEY_LAST_SEEN, self.last_seen.to_string());
        for (index, address) in self.addresses.iter().enumerate() {
            record.set(&format!("{PREFIX_ADDRESS}{index}"), address.as_str());
        }
        for (position, (name, value)) in self.facts.iter().enumerate() {
            if !is_valid_name(name) {
                return Err(format!("fact name {name:?} is not valid"));
            }
            if self.facts[..position].iter().any(|(seen, _)| seen == name) {
                return Err(format!("fact {name} given twice"));
            }
            record.set(&format!("{PREFIX_FACT}{name}"), value.as_str());
        }
        Ok(record)
    }

    /// Reads a record written by [`HardwareRecord::to_record`].
    pub fn from_record(record: &Record) -> Result<HardwareRecord, String> {
        let addresses = numbered(record.iter(), PREFIX_ADDRESS)?
            .into_iter()
            .enumerate()
            .map(|(index, group)| match group.as_slice() {
                [("", value)] => Ok((*value).to_string()),
                _ => Err(format!("{PREFIX_ADDRESS}{index} has sub-keys")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut facts = Vec::new();
        for (key, value) in record.iter() {
            if let Some(name) = key.strip_prefix(PREFIX_FACT) {
                if !is_valid_name(name) {
                    return Err(format!("{key}: fact name is not valid"));
                }
                facts.push((name.to_string(), value.to_string()));
            }
        }
        Ok(HardwareRecord {
            host_uuid: parse_canonical_uuid(record.require(KEY_HOST_UUID)?)?,
            name: record.require(KEY_NAME)?.to_string(),
            addresses,
            network: record.require(KEY_NETWORK)?.to_string(),
            boot_id: record
                .get(KEY_BOOT_ID)
                .map(|text| parse_number(KEY_BOOT_ID, text))
                .transpose()?,
            facts,
            first_seen: parse_number(KEY_FIRST_SEEN, record.require(KEY_FIRST_SEEN)?)?,
            last_seen: parse_number(KEY_LAST_SEEN, record.require(KEY_LAST_SEEN)?)?,
            state: record.require(KEY_STATE)?.to_string(),
        })
    }
}

/// One action of a VM owner's service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActionRecord {
    /// The action's name (`service.N.action.M.name`).
    pub name: String,
    /// Its operation semantics from the SCPD (`service.N.action.M.semantics`).
    pub semantics: Vec<Semantic>,
    /// Its in-arguments' names, in SCPD order (`service.N.action.M.in`, comma-separated;
    /// absent from records written before it was kept: none then).
    pub inputs: Vec<String>,
    /// Its out-arguments' names, in SCPD order (`service.N.action.M.out`, likewise).
    pub outputs: Vec<String>,
}

/// One service a VM's owner exposes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceRecord {
    /// serviceType (`service.N.type`).
    pub service_type: String,
    /// Its actions, in SCPD order.
    pub actions: Vec<ActionRecord>,
}

/// One VM in the virtual infrastructure configuration repository (`virtual/<vm-uuid>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualRecord {
    /// The Xen VM UUID (`vm_uuid`).
    pub vm_uuid: Uuid,
    /// The VM's name (`name`).
    pub name: String,
    /// The host whose hypervisor lists it, if any: provider-private (`hypervisor`).
    pub hypervisor: Option<Uuid>,
    /// Run state (`run_state`).
    pub run_state: String,
    /// The tenant of the network the VM advertises in, if it was seen there (`tenant`).
    pub tenant: Option<String>,
    /// The services its owner exposes (`service.N.*`).
    pub services: Vec<ServiceRecord>,
    /// Unix time it was first seen (`first_seen`).
    pub first_seen: u64,
    /// Unix time it was last seen (`last_seen`).
    pub last_seen: u64,
}

impl VirtualRecord {
    /// The record's `key=value` form: [`tenant_view`] plus the provider-private keys; refuses
    /// a tenant name [`is_valid_name`] refuses.
    pub fn to_record(&self) -> Result<Record, String> {
        let mut record = tenant_view(self);
        if let Some(tenant) = &self.tenant {
            if !is_valid_name(tenant) {
                return Err(format!("tenant name {tenant:?} is not valid"));
            }
        }
        if let Some(hypervisor) = &self.hypervisor {
            record.set(KEY_HYPERVISOR, file_name(hypervisor));
        }
        Ok(record)
    }

    /// Reads a record written by [`VirtualRecord::to_record`].
    pub fn from_record(record: &Record) -> Result<VirtualRecord, String> {
        let tenant = record.get(KEY_TENANT).map(str::to_string);
        if let Some(tenant) = &tenant {
            if !is_valid_name(tenant) {
                return Err(format!("{KEY_TENANT}: {tenant:?} is not valid"));
            }
        }
        let services = numbered(record.iter(), PREFIX_SERVICE)?
            .into_iter()
            .enumerate()
            .map(|(index, group)| parse_service(index, &group))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VirtualRecord {
            vm_uuid: parse_canonical_uuid(record.require(KEY_VM_UUID)?)?,
            name: record.require(KEY_NAME)?.to_string(),
            hypervisor: record
                .get(KEY_HYPERVISOR)
                .map(parse_canonical_uuid)
                .transpose()?,
            run_state: record.require(KEY_RUN_STATE)?.to_string(),
            tenant,
            services,
            first_seen: parse_number(KEY_FIRST_SEEN, record.require(KEY_FIRST_SEEN)?)?,
            last_seen: parse_number(KEY_LAST_SEEN, record.require(KEY_LAST_SEEN)?)?,
        })
    }
}

/// Reads one `service.N.*` group.
fn parse_service(index: usize, group: &[(&str, &str)]) -> Result<ServiceRecord, String> {
    let mut service_type = None;
    for (sub_key, value) in group {
        if *sub_key == SUBKEY_TYPE {
            service_type = Some((*value).to_string());
        } else if !sub_key.starts_with(PREFIX_ACTION) {
            return Err(format!("{PREFIX_SERVICE}{index}.{sub_key}: unknown key"));
        }
    }
    let actions = numbered(group.iter().copied(), PREFIX_ACTION)?
        .into_iter()
        .enumerate()
        .map(|(action, keys)| {
            let mut name = None;
            let mut semantics = Vec::new();
            let mut inputs = Vec::new();
            let mut outputs = Vec::new();
            for (sub_key, value) in keys {
                match sub_key {
                    SUBKEY_ACTION_NAME => name = Some(value.to_string()),
                    SUBKEY_SEMANTICS => semantics = parse_semantics(value)?,
                    SUBKEY_INPUTS => inputs = parse_arguments(SUBKEY_INPUTS, value)?,
                    SUBKEY_OUTPUTS => outputs = parse_arguments(SUBKEY_OUTPUTS, value)?,
                    _ => {
                        return Err(format!(
                            "{PREFIX_SERVICE}{index}.{PREFIX_ACTION}{action}.{sub_key}: unknown key"
                        ))
                    }
                }
            }
            let name = name.ok_or_else(|| {
                format!("{PREFIX_SERVICE}{index}.{PREFIX_ACTION}{action}.{SUBKEY_ACTION_NAME} is missing")
            })?;
            Ok(ActionRecord {
                name,
                semantics,
                inputs,
                outputs,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ServiceRecord {
        service_type: service_type
            .ok_or_else(|| format!("{PREFIX_SERVICE}{index}.{SUBKEY_TYPE} is missing"))?,
        actions,
    })
}

/// Reads `Text,Count`: names of A-Z a-z 0-9 _ (what an SCPD allows), none empty.
fn parse_arguments(key: &str, text: &str) -> Result<Vec<String>, String> {
    text.split(ARGUMENTS_SEPARATOR)
        .map(|name| {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if valid {
                Ok(name.to_string())
            } else {
                Err(format!("{key}: bad argument name {name:?}"))
            }
        })
        .collect()
}

/// Reads `idempotent,confirm`.
fn parse_semantics(text: &str) -> Result<Vec<Semantic>, String> {
    text.split(SEMANTICS_SEPARATOR)
        .map(|token| {
            SEMANTICS
                .into_iter()
                .find(|known| known.as_str() == token)
                .ok_or_else(|| format!("{SUBKEY_SEMANTICS}: unknown token {token:?}"))
        })
        .collect()
}

/// What a tenant may read about one of its VMs: `vm_uuid`, `name`, `run_state`, `tenant`,
/// `first_seen`, `last_seen` and the services with their actions and semantics, in the
/// record's key form. It is built from an explicit list, so a field added to [`VirtualRecord`]
/// stays out of it until it is added here: the hypervisor placement is left out, and so is
/// everything else the provider keeps (host records, other VMs: the view is made from this one
/// VM's record alone).
pub fn tenant_view(vm: &VirtualRecord) -> Record {
    let mut record = Record::default();
    record.set(KEY_VM_UUID, file_name(&vm.vm_uuid));
    record.set(KEY_NAME, vm.name.as_str());
    record.set(KEY_RUN_STATE, vm.run_state.as_str());
    if let Some(tenant) = &vm.tenant {
        record.set(KEY_TENANT, tenant.as_str());
    }
    record.set(KEY_FIRST_SEEN, vm.first_seen.to_string());
    record.set(KEY_LAST_SEEN, vm.last_seen.to_string());
    for (index, service) in vm.services.iter().enumerate() {
        let prefix = format!("{PREFIX_SERVICE}{index}.");
        record.set(
            &format!("{prefix}{SUBKEY_TYPE}"),
            service.service_type.as_str(),
        );
        for (action_index, action) in service.actions.iter().enumerate() {
            let action_prefix = format!("{prefix}{PREFIX_ACTION}{action_index}.");
            record.set(
                &format!("{action_prefix}{SUBKEY_ACTION_NAME}"),
                action.name.as_str(),
            );
            if !action.semantics.is_empty() {
                let tokens: Vec<&str> = action.semantics.iter().map(|s| s.as_str()).collect();
                record.set(
                    &format!("{action_prefix}{SUBKEY_SEMANTICS}"),
                    tokens.join(","),
                );
            }
            for (sub_key, names) in [
                (SUBKEY_INPUTS, &action.inputs),
                (SUBKEY_OUTPUTS, &action.outputs),
            ] {
                if !names.is_empty() {
                    let separator = ARGUMENTS_SEPARATOR.to_string();
                    record.set(&format!("{action_prefix}{sub_key}"), names.join(&separator));
                }
            }
        }
    }
    record
}

/// Why a record file's text was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TextError {
    /// It does not parse: it is moved aside.
    Corrupt(String),
    /// Another format version wrote it: it is left alone and the repository is not opened.
    OtherVersion(String),
}

/// A record as file text: the format line, then escaped `key=value` lines.
pub(super) fn render_record(record: &Record) -> io::Result<String> {
    let body = record
        .to_text_escaped()
        .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
    let text = format!("{REPO_FORMAT_LINE}\n{body}");
    if text.len() > REPO_MAX_RECORD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("record of {} bytes exceeds {REPO_MAX_RECORD}", text.len()),
        ));
    }
    Ok(text)
}

/// Reads file text written by [`render_record`].
fn parse_record_text(text: &str) -> Result<Record, TextError> {
    match text.lines().next() {
        Some(REPO_FORMAT_LINE) => {}
        Some(line) if line.starts_with(REPO_FORMAT_PREFIX) => {
            return Err(TextError::OtherVersion(format!(
                "format {line:?}, this xenplug reads {REPO_FORMAT_LINE:?}"
            )))
        }
        _ => {
            return Err(TextError::Corrupt(format!(
                "first line is not {REPO_FORMAT_LINE:?}"
            )))
        }
    }
    Record::parse_escaped(text).map_err(TextError::Corrupt)
}

pub(super) fn parse_hardware_text(text: &str) -> Result<HardwareRecord, TextError> {
    HardwareRecord::from_record(&parse_record_text(text)?).map_err(TextError::Corrupt)
}

pub(super) fn parse_virtual_text(text: &str) -> Result<VirtualRecord, TextError> {
    VirtualRecord::from_record(&parse_record_text(text)?).map_err(TextError::Corrupt)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::repo) fn host(n: u128) -> Uuid {
        Uuid::from_u128(0x4c4c_4544_0000_0000_0000_0000_0000_0000 + n)
    }

    pub(in crate::repo) fn vm_uuid(n: u128) -> Uuid {
        Uuid::from_u128(0x9a0b_0000_0000_4000_8000_0000_0000_0000 + n)
    }

    static HARDWARE_FIXTURE: &str = "# xenplug-repo 1\n\
        host_uuid=4c4c4544-0000-0000-0000-000000000001\n\
        name=dom0\\x20rack\\x203\n\
        network=mgmt\n\
        state=online\n\
        boot_id=7\n\
        first_seen=1700000000\n\
        last_seen=1700000600\n\
        address.0=10.0.0.5\n\
        address.1=fe80::1%eth0\n\
        fact.cpus=16\n\
        fact.hypervisor_version=4.17\n";

    #[test]
    fn hardware_fixture_parses_and_renders_identically() {
        let record = parse_hardware_text(HARDWARE_FIXTURE).unwrap();
        assert_eq!(record.host_uuid, host(1));
        assert_eq!(record.name, "dom0 rack 3");
        assert_eq!(record.addresses, ["10.0.0.5", "fe80::1%eth0"]);
        assert_eq!(record.boot_id, Some(7));
        assert_eq!(
            record.facts,
            [
                ("cpus".to_string(), "16".to_string()),
                ("hypervisor_version".to_string(), "4.17".to_string())
            ]
        );
        let text = render_record(&record.to_record().unwrap()).unwrap();
        assert_eq!(text, HARDWARE_FIXTURE);
        for end in 0..HARDWARE_FIXTURE.len() {
            let _ = parse_hardware_text(&HARDWARE_FIXTURE[..end]);
        }
    }

    #[test]
    fn virtual_fixture_parses_and_renders_identically() {
        let fixture = "# xenplug-repo 1\n\
            vm_uuid=9a0b0000-0000-4000-8000-000000000003\n\
            name=web\n\
            run_state=running\n\
            tenant=acme\n\
            first_seen=1\n\
            last_seen=2\n\
            service.0.type=urn:xenplug-org:service:Web:1\n\
            service.0.action.0.name=Restart\n\
            service.0.action.0.semantics=destructive,confirm\n\
            service.0.action.0.in=Delay\n\
            service.0.action.0.out=Done,Pid_2\n\
            hypervisor=4c4c4544-0000-0000-0000-000000000001\n";
        let record = parse_virtual_text(fixture).unwrap();
        assert_eq!(record.vm_uuid, vm_uuid(3));
        assert_eq!(record.hypervisor, Some(host(1)));
        assert_eq!(record.services[0].actions[0].semantics.len(), 2);
        assert_eq!(record.services[0].actions[0].inputs, ["Delay"]);
        assert_eq!(record.services[0].actions[0].outputs, ["Done", "Pid_2"]);
        assert_eq!(
            render_record(&record.to_record().unwrap()).unwrap(),
            fixture
        );
        for end in 0..fixture.len() {
            let _ = parse_virtual_text(&fixture[..end]);
        }
    }

    #[test]
    fn malformed_records_are_refused() {
        let base = "# xenplug-repo 1\nvm_uuid=9a0b0000-0000-4000-8000-000000000003\nname=a\n\
                    run_state=x\nfirst_seen=1\nlast_seen=2\n";
        assert!(parse_virtual_text(base).is_ok());
        for extra in [
            "service.1.type=gap\n",
            "service.0.type=a\nservice.0.colour=red\n",
            "service.00.type=a\n",
            "service.x.type=a\n",
            "service.0.action.0.semantics=idempotent\nservice.0.type=a\n",
            "service.0.type=a\nservice.0.action.0.name=b\nservice.0.action.0.semantics=fast\n",
            "service.0.type=a\nservice.0.action.0.name=b\nservice.0.action.0.semantics=\n",
            "service.0.type=a\nservice.0.action.0.name=b\nservice.0.action.0.in=\n",
            "service.0.type=a\nservice.0.action.0.name=b\nservice.0.action.0.in=A,,B\n",
            "service.0.type=a\nservice.0.action.0.name=b\nservice.0.action.0.out=A-B\n",
            "tenant=../etc\n",
            "hypervisor=4C4C4544-0000-0000-0000-000000000001\n",
            "name=again\n",
        ] {
            assert!(
                parse_virtual_text(&format!("{base}{extra}")).is_err(),
                "{extra:?}"
            );
        }
        assert!(parse_virtual_text(&format!("{base}colour=red\n")).is_ok());
        assert!(parse_virtual_text(&base.replace("first_seen=1", "first_seen=+1")).is_err());
        assert!(parse_virtual_text(&base.replace("last_seen=2", "last_seen=")).is_err());
        assert_eq!(
            parse_virtual_text(&base.replace("# xenplug-repo 1", "# xenplug-repo 2")),
            Err(TextError::OtherVersion(
                "format \"# xenplug-repo 2\", this xenplug reads \"# xenplug-repo 1\"".into()
            ))
        );
        assert!(matches!(
            parse_virtual_text(&base.replace("# xenplug-repo 1\n", "")),
            Err(TextError::Corrupt(_))
        ));
    }
}
