//! The constants more than one part of xenplug shares: every URN, URL path and port, the
//! header values and limits two layers must agree on, and the chain of timeouts that bound
//! one another (a relay waits for the longest backend call). A constant only one file uses
//! lives at the top of that file. Code names constants; it never writes a URN, path or limit
//! inline.

use std::net::Ipv4Addr;
use std::time::Duration;

// ---- SSDP (UDA 1.1 section 1) -------------------------------------------------------------

/// The SSDP IPv4 multicast group (UDA 1.1 section 1.1.2).
pub const SSDP_V4_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// The SSDP port.
pub const SSDP_PORT: u16 = 1900;
/// HOST header value of multicast SSDP messages.
pub const SSDP_HOST: &str = "239.255.255.250:1900";
/// Largest SSDP datagram accepted; larger ones are dropped (a search is a few hundred bytes).
pub const SSDP_MAX_DATAGRAM: usize = 2048;
/// Buffer one emitted SSDP message is written into.
pub const SSDP_EMIT_BUFFER: usize = 1024;
/// Default CACHE-CONTROL max-age in seconds.
pub const SSDP_DEFAULT_MAX_AGE: u32 = 1800;
/// Smallest max-age accepted on the command line (UDA 1.1 asks for at least 1800 in
/// production; shorter values are for tests).
pub const SSDP_MIN_MAX_AGE: u32 = 2;
/// MX values are clamped into this range (UDA 1.1 section 1.3.2: MX above 5 is treated as 5).
pub const SSDP_MX_MIN: u32 = 1;
/// See [`SSDP_MX_MIN`].
pub const SSDP_MX_MAX: u32 = 5;
/// The announcement set is sent twice at start, the repeat this long after the first...
pub const SSDP_REPEAT_MIN: Duration = Duration::from_millis(100);
/// ...and at most this long after it.
pub const SSDP_REPEAT_MAX: Duration = Duration::from_millis(200);
/// Window of the per-source search budget.
pub const SSDP_RATE_WINDOW: Duration = Duration::from_secs(1);
/// Search responses waiting for their MX delay, at most; more searches are dropped.
pub const SSDP_MAX_PENDING_REPLIES: usize = 4096;
/// MAN value of every search, quotes included (UDA 1.1 section 1.3.2).
pub const SSDP_MAN_DISCOVER: &str = "\"ssdp:discover\"";
/// ST of a search for every device and service.
pub const SSDP_ST_ALL: &str = "ssdp:all";
/// NT / ST naming root devices.
pub const SSDP_NT_ROOT_DEVICE: &str = "upnp:rootdevice";
/// Prefix of a UDN, of the NT / ST naming one device, and of every GENA SID (UDA 1.1 section
/// 4.1.2: a SID "MUST begin with uuid:").
pub const UDN_PREFIX: &str = "uuid:";
/// Prefix of device and service type URNs.
pub const URN_PREFIX: &str = "urn:";

// ---- UPnP namespaces and types -------------------------------------------------------------

/// Device description and SCPD namespace.
pub const NS_DEVICE: &str = "urn:schemas-upnp-org:device-1-0";
/// SCPD namespace.
pub const NS_SERVICE: &str = "urn:schemas-upnp-org:service-1-0";
/// SOAP envelope namespace.
pub const NS_SOAP_ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP encoding style.
pub const SOAP_ENCODING: &str = "http://schemas.xmlsoap.org/soap/encoding/";
/// UPnP control namespace (UPnPError detail).
pub const NS_CONTROL: &str = "urn:schemas-upnp-org:control-1-0";
/// GENA property set namespace.
pub const NS_EVENT: &str = "urn:schemas-upnp-org:event-1-0";
/// xenplug's vendor namespace for elements inside descriptions and SCPDs.
pub const NS_XENPLUG: &str = "urn:xenplug-org:schemas-1-0";

/// Hypervisor root device type.
pub const URN_DEVICE_HYPERVISOR: &str = "urn:xenplug-org:device:Hypervisor:1";
/// Domain embedded device type (one per VM a hypervisor knows).
pub const URN_DEVICE_DOMAIN: &str = "urn:xenplug-org:device:Domain:1";
/// Virtual machine root device type (advertised from inside a guest).
pub const URN_DEVICE_VIRTUAL_MACHINE: &str = "urn:xenplug-org:device:VirtualMachine:1";
/// Hypervisor service type.
pub const URN_SERVICE_HYPERVISOR: &str = "urn:xenplug-org:service:Hypervisor:1";
/// Domain control service type.
pub const URN_SERVICE_DOMAIN_CONTROL: &str = "urn:xenplug-org:service:DomainControl:1";
/// Hypervisor service id.
pub const SERVICE_ID_HYPERVISOR: &str = "urn:xenplug-org:serviceId:Hypervisor";
/// Domain control service id.
pub const SERVICE_ID_DOMAIN_CONTROL: &str = "urn:xenplug-org:serviceId:DomainControl";
/// Vendor element inside an SCPD action: space-separated operation semantics.
pub const ELEMENT_SEMANTICS: &str = "semantics";

/// Product name in SERVER and in descriptions.
pub const PRODUCT: &str = "xenplug";
/// Product version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// ---- HTTP paths (one place for every URL we serve) ----------------------------------------

/// Root description.
pub const DESC_PATH: &str = "/description.xml";
/// Prefix of SCPD paths: `/scpd/<ServiceName>.xml`.
pub const SCPD_PREFIX: &str = "/scpd/";
/// Prefix of control URLs: `/control/<service key>`.
pub const CONTROL_PREFIX: &str = "/control/";
/// Prefix of event subscription URLs: `/event/<service key>`.
pub const EVENT_PREFIX: &str = "/event/";

// ---- HTTP limits ---------------------------------------------------------------------------

/// Request line plus headers, at most.
pub const HTTP_MAX_HEAD: usize = 8 * 1024;
/// Header lines per request, at most.
pub const HTTP_MAX_HEADERS: usize = 32;
/// Request body (SOAP envelope), at most.
pub const HTTP_MAX_BODY: usize = 64 * 1024;
/// Buffer a response head is written into.
pub const HTTP_RESPONSE_HEAD_BUFFER: usize = 1024;

// ---- GENA (UDA 1.1 section 4) --------------------------------------------------------------

/// Subscription duration granted when the subscriber asks for none or for infinite.
pub const GENA_DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Longest subscription granted (UDA 1.1 section 4.1.2: the publisher chooses and answers what
/// it granted), and longest a publisher's grant is trusted: a subscription whose subscriber
/// went away holds a slot for at most this long.
pub const GENA_MAX_TIMEOUT: Duration = Duration::from_secs(1800);
/// Callback URLs per SUBSCRIBE, at most (CallStranger hardening).
pub const GENA_MAX_CALLBACKS: usize = 6;
/// Length of one callback URL, at most.
pub const GENA_MAX_CALLBACK_LEN: usize = 256;
/// NT header value of SUBSCRIBE and event NOTIFY requests (UDA 1.1 section 4.1.2).
pub const GENA_NT_EVENT: &str = "upnp:event";
/// Port of a callback URL that names none.
pub const GENA_CALLBACK_DEFAULT_PORT: u16 = 80;
/// Length of a SID a device grants us, at most (ours are 41 bytes: `uuid:` and a UUID).
pub const GENA_MAX_SID_LEN: usize = 100;
/// Size of an event NOTIFY body (property set) parsed, at most.
pub const GENA_MAX_EVENT_BODY: usize = 64 * 1024;
/// Variables in one event body, at most.
pub const GENA_MAX_EVENT_PROPERTIES: usize = 128;

// ---- SOAP ----------------------------------------------------------------------------------

/// Arguments per action, at most.
pub const SOAP_MAX_ARGUMENTS: usize = 32;
/// Size of a SOAP envelope parsed, at most (the HTTP body limit; restated so the parser does
/// not trust its caller to have applied it).
pub const SOAP_MAX_ENVELOPE: usize = HTTP_MAX_BODY;
/// CONTENT-TYPE of SOAP bodies and GENA event bodies (UDA 1.1 sections 3.2 and 4.3.2).
pub const CONTENT_TYPE_XML: &str = "text/xml; charset=\"utf-8\"";

// ---- Backends and state --------------------------------------------------------------------

/// Backend calls running at once, at most.
pub const BACKEND_MAX_CALLS: usize = 4;

// ---- SCPD files of a VM owner's services (UDA 1.1 section 2.5) ----------------------------

/// Size of an SCPD file parsed, at most.
pub const SCPD_MAX_BYTES: usize = 64 * 1024;
/// Length in bytes of an action, argument or state variable name, at most.
pub const SCPD_MAX_NAME: usize = 64;
/// Actions per SCPD, at most.
pub const SCPD_MAX_ACTIONS: usize = 64;
/// Arguments per action, at most: what the SOAP parser accepts.
pub const SCPD_MAX_ARGUMENTS: usize = SOAP_MAX_ARGUMENTS;
/// State variables per SCPD, at most.
pub const SCPD_MAX_VARIABLES: usize = 128;
/// Argument name no action may use: it is the element of a SOAP fault's detail.
pub const SCPD_RESERVED_ARGUMENT: &str = "UPnPError";
/// The data types of UDA 1.1 section 2.5 (`dataType`).
pub const UPNP_DATA_TYPES: [&str; 24] = [
    "ui1",
    "ui2",
    "ui4",
    "i1",
    "i2",
    "i4",
    "int",
    "r4",
    "r8",
    "number",
    "fixed.14.4",
    "float",
    "char",
    "string",
    "date",
    "dateTime",
    "dateTime.tz",
    "time",
    "time.tz",
    "boolean",
    "bin.base64",
    "bin.hex",
    "uri",
    "uuid",
];

// ---- Device descriptions read by a control point (UDA 1.1 section 2.3) --------------------

/// Size of a device description parsed, at most, unless configured otherwise (the tracker's
/// `--max-description`): xenplug describes a domain in about 800 bytes, so a hypervisor of
/// 2,000 domains in 1.6 MB; this admits 4,000 with long names.
pub const DESC_MAX_BYTES: usize = 4 * 1024 * 1024;
/// A description holds at most one embedded device (all levels together) per this many bytes
/// of its size limit: 8,192 at [`DESC_MAX_BYTES`]. A device with its required fields takes
/// about 150 bytes written compactly, xenplug's Domain about 800.
pub const DESC_BYTES_PER_DEVICE: usize = 512;
/// Services of one device, at most.
pub const DESC_MAX_SERVICES: usize = 32;
/// Levels of embedded devices below the root device, at most (the root is level 0; its
/// embedded devices are level 1).
pub const DESC_MAX_DEVICE_NESTING: usize = 4;
/// Length in bytes of one text field (a type, name, UDN, URL), trimmed, at most.
pub const DESC_MAX_TEXT: usize = 256;
/// Largest configId accepted: UDA 1.1 section 1.1.3 says CONFIGID.UPNP.ORG, whose value the
/// description's configId attribute carries, "MUST be a non-negative, 31-bit integer".
pub const DESC_MAX_CONFIG_ID: u32 = 0x7FFF_FFFF;
/// Scheme of every URL xenplug follows: a description's URLs, a LOCATION, a GENA callback
/// (compared case-insensitively).
pub const HTTP_URL_SCHEME: &str = "http://";

// ---- JSON (the tracker's read API, RFC 8259) -----------------------------------------------

/// Nesting of arrays and objects one JSON document may have, at most.
pub const JSON_MAX_DEPTH: usize = 32;

// ---- VM advertiser: the owner's services directory -----------------------------------------

/// Default `--services` directory of `advertise vm`.
pub const VM_DEFAULT_SERVICES_DIR: &str = "/etc/xenplug/services";
/// A service folder's SCPD file.
pub const VM_SCPD_FILE: &str = "scpd.xml";
/// A service folder's handler executable.
pub const VM_HANDLER_FILE: &str = "handler";
/// A service folder's folder of evented state variable values, one file per variable.
pub const VM_STATE_FOLDER: &str = "state";
/// Default serviceType of an owner service: this, its folder name, `:`, the version.
pub const URN_SERVICE_XENPLUG_PREFIX: &str = "urn:xenplug-org:service:";
/// Default serviceId of an owner service: this and its folder name.
pub const SERVICE_ID_XENPLUG_PREFIX: &str = "urn:xenplug-org:serviceId:";
/// Default deviceType of an owner's embedded device: this, its folder name, `:`, the version.
pub const URN_DEVICE_XENPLUG_PREFIX: &str = "urn:xenplug-org:device:";

// ---- VM service handlers (`advertise vm`) --------------------------------------------------

/// Time one handler call may run before its process group is killed.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(10);

// ---- Tracker: discovery (the control point side of SSDP) -----------------------------------

/// MX of the tracker's searches unless configured otherwise (clamped to [`SSDP_MX_MIN`]..
/// [`SSDP_MX_MAX`] like every MX).
pub const DISCOVERY_DEFAULT_SEARCH_MX: u32 = 2;
/// Length in bytes of a LOCATION kept, at most.
pub const DISCOVERY_MAX_LOCATION: usize = 512;
/// Third field of a device type URN (`urn:<domain>:device:<type>:<version>`), as opposed to
/// `service`.
pub const URN_KIND_DEVICE: &str = "device";

// ---- Tracker repositories (flat files) -----------------------------------------------------

/// First line of every repository record (hardware, virtual, tenant slice): names the format
/// and its version.
pub const REPO_FORMAT_LINE: &str = "# xenplug-repo 1";
/// First line of the event journal.
pub const JOURNAL_FORMAT_LINE: &str = "# xenplug-journal 1";
/// Size of one record file, at most: larger ones are refused when written and moved aside
/// when read.
pub const REPO_MAX_RECORD: usize = 256 * 1024;
/// Length of one journal line, newline included, at most.
pub const REPO_MAX_JOURNAL_LINE: usize = 64 * 1024;
/// Length of a tenant name, fact name or event detail key, at most.
pub const REPO_MAX_NAME: usize = 64;

// ---- Tracker: inventory (what the repositories hold) ---------------------------------------

/// Evented variable of the Hypervisor service: the hosted VM UUIDs, comma-separated.
pub const VARIABLE_VIRTUAL_MACHINE_IDS: &str = "VirtualMachineIds";
/// Evented variable of the DomainControl service: the domain's run state.
pub const VARIABLE_STATE: &str = "State";
/// `run_state` of a VM before any State event told it.
pub const RUN_STATE_UNKNOWN: &str = "unknown";
/// Host fact holding the hypervisor description's modelName (the only host fact a
/// description carries).
pub const FACT_MODEL: &str = "model";
/// A record whose only change is its `last_seen` is written again only when that is at least
/// this many seconds later than the `last_seen` last written, so a device that is refetched
/// often does not rewrite its file every time.
pub const INVENTORY_LAST_SEEN_WRITE_INTERVAL: u64 = 60;
/// Seconds after the tracker's first clock reading following a restore within which restored
/// hypervisors and VMs must be seen again; those that are not are removed. A device advertising
/// with the default max-age announces itself again within that time even if it missed the
/// tracker's start-up search.
pub const INVENTORY_RESTORE_GRACE: u64 = SSDP_DEFAULT_MAX_AGE as u64;

// ---- Tracker run time ----------------------------------------------------------------------

/// Longest a `GET /api/events` waits for a new event.
pub const TRACK_API_LONG_POLL: Duration = Duration::from_secs(20);
/// Default de-virtualization grace period, in seconds.
pub const TRACK_DEFAULT_GRACE_SECONDS: u64 = 60;

// ---- console (`xenplug console`, a client of the tracker's read API) --------------------------

/// The tracker's read API the console asks when `--tracker` is not given.
pub const CONSOLE_DEFAULT_TRACKER: &str = "http://127.0.0.1:8700";
/// `GET` path of the tracker's tree document.
pub const API_TREE_PATH: &str = "/api/tree";
/// `GET` path of the tracker's event feed (`?since=N`).
pub const API_EVENTS_PATH: &str = "/api/events";
/// Prefix of a VM's paths in the tracker's API (`/api/vms/<uuid>`, `.../actions`).
pub const API_VMS_PREFIX: &str = "/api/vms/";
/// Suffix of the relay path after the VM UUID.
pub const API_ACTIONS_SUFFIX: &str = "/actions";
/// Longest the console waits for a tree (an action's answer waits for
/// [`CONSOLE_ACTION_TIMEOUT`]).
pub const CONSOLE_TIMEOUT: Duration = Duration::from_secs(25);
/// Longest one long-poll of `console watch` may take: the tracker's wait plus slack.
pub const CONSOLE_WATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before `console watch` asks again after the tracker could not be reached.
pub const CONSOLE_WATCH_RETRY: Duration = Duration::from_secs(2);
/// Exit status of a console command that failed (tracker unreachable, UPnP error, refused).
pub const CONSOLE_EXIT_FAILED: i32 = 1;
/// Exit status for a usage error: unknown target or action, bad argument.
pub const CONSOLE_EXIT_USAGE: i32 = 2;

// ---- console sources (`--iface`, `--tracker`) and hypervisor targets ----------------------------

/// Prefix of a hypervisor's paths in the tracker's API (`/api/hypervisors/<uuid>/actions`:
/// the relay to its Hypervisor service, provider listeners only).
pub const API_HYPERVISORS_PREFIX: &str = "/api/hypervisors/";

// ---- XenAPI backend (`--backend xapi`) -------------------------------------------------------

/// Largest XML-RPC method response read (a pool's `VM.get_all_records` runs to megabytes).
pub const XMLRPC_MAX_RESPONSE: usize = 32 * 1024 * 1024;
/// Time allowed for one XenAPI call: connect, send, answer.
pub const XAPI_CALL_TIMEOUT: Duration = Duration::from_secs(30);

// ---- libxl backend (`--backend libxl`, the dom0 build) ---------------------------------------

/// Longest `xl create` may run before it is killed (a small PV guest takes about 6 s under
/// emulation).
pub const XL_CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest `xl shutdown` or `xl reboot` may run before it is killed: xl waits up to 60 s for
/// the guest to acknowledge the request.
pub const XL_CONTROL_TIMEOUT: Duration = Duration::from_secs(75);

/// Longest `xl save` may run before it is killed: it writes the whole of the domain's memory
/// (a 128 MiB guest takes a few seconds under emulation; 16 GiB at 100 MB/s takes under 3
/// minutes).
pub const XL_SAVE_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest `xl restore` may run before it is killed: it reads the image back.
pub const XL_RESTORE_TIMEOUT: Duration = Duration::from_secs(300);

// ---- console web page (`xenplug console serve`) -----------------------------------------------

/// Path of the DomainControl description (actions, arguments, types) the page reads.
pub const CONSOLE_WEB_DOMAIN_CONTROL_PATH: &str = "/domain-control.json";
/// Path of the Hypervisor service's description (actions, arguments, types) the page reads.
pub const CONSOLE_WEB_HYPERVISOR_PATH: &str = "/hypervisor.json";

// ---- demo (`xenplug demo`: every role on loopback, supervised) --------------------------------

/// The only interface the demo's children ever get.
pub const DEMO_IFACE: &str = "lo";

// ---- who may call mutating hypervisor actions (`--allow-control`) ------------------------------

/// The `--allow-control` word that lets every admitted peer (any host of the interfaces'
/// subnets) call mutating actions: the behaviour before the allow-list existed.
pub const ALLOW_CONTROL_ANY: &str = "any";

// ---- GENA subscriptions kept across refetches, long control calls through the relay ---------

/// Longest one backend operation behind a control action may run: the longest of the
/// backends' own bounds ([`XL_SAVE_TIMEOUT`], [`XL_RESTORE_TIMEOUT`], [`XL_CREATE_TIMEOUT`],
/// [`XL_CONTROL_TIMEOUT`], [`XAPI_CALL_TIMEOUT`], and [`HANDLER_TIMEOUT`] for a VM's own
/// services). Today `xl save` / `xl restore`: 300 s.
pub const BACKEND_LONGEST_CALL: Duration = longest(&[
    XL_SAVE_TIMEOUT,
    XL_RESTORE_TIMEOUT,
    XL_CREATE_TIMEOUT,
    XL_CONTROL_TIMEOUT,
    XAPI_CALL_TIMEOUT,
    HANDLER_TIMEOUT,
]);
/// What a relayed call may take beyond the backend operation itself: connecting, the SOAP
/// exchange, the device's own checks (the relay's whole bound before long calls were known).
pub const TRACK_RELAY_SLACK: Duration = Duration::from_secs(15);
/// Longest the tracker's relay (`POST /api/vms/<uuid>/actions`,
/// `/api/hypervisors/<uuid>/actions`) waits for the device's answer: one backend operation
/// ([`BACKEND_LONGEST_CALL`]) plus [`TRACK_RELAY_SLACK`], so a Suspend that saves a big guest
/// to disk is not reported failed while it succeeds. A call that queues behind other long
/// operations on the same host (at most `BACKEND_MAX_CALLS` run at once) may still outlive
/// it; the relay then answers 502 with the reason.
pub const TRACK_RELAY_TIMEOUT: Duration =
    Duration::from_secs(BACKEND_LONGEST_CALL.as_secs() + TRACK_RELAY_SLACK.as_secs());
/// Longest the console (`console call`, `console serve`'s proxy) waits for a relayed action's
/// answer: the relay's own bound plus 10 s, so the relay's answer (its 502 included) always
/// arrives first. Reads (tree, events) keep [`CONSOLE_TIMEOUT`] and [`CONSOLE_WATCH_TIMEOUT`].
pub const CONSOLE_ACTION_TIMEOUT: Duration =
    Duration::from_secs(TRACK_RELAY_TIMEOUT.as_secs() + 10);
/// Key of the sim backend's host file that delays every mutating operation by that many
/// milliseconds (a slow `xl save` for tests and the demo); absent or 0: no delay.
pub const SIM_DELAY_KEY: &str = "delay_ms";

/// The longest of `durations` (zero for none), for constants derived from others.
const fn longest(durations: &[Duration]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut rest = durations;
    while let [first, tail @ ..] = rest {
        if first.as_nanos() > longest.as_nanos() {
            longest = *first;
        }
        rest = tail;
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_takes_the_longest() {
        assert_eq!(longest(&[]), Duration::ZERO);
        let (short, long) = (Duration::from_millis(1500), Duration::from_secs(2));
        assert_eq!(longest(&[short, long, short]), long);
        assert_eq!(longest(&[long, short]), long);
    }

    #[test]
    fn a_relayed_action_outlives_every_backend_operation() {
        for bound in [
            XL_SAVE_TIMEOUT,
            XL_RESTORE_TIMEOUT,
            XL_CREATE_TIMEOUT,
            XL_CONTROL_TIMEOUT,
            XAPI_CALL_TIMEOUT,
            HANDLER_TIMEOUT,
        ] {
            assert!(BACKEND_LONGEST_CALL >= bound);
            assert!(TRACK_RELAY_TIMEOUT > bound);
        }
        assert!(CONSOLE_ACTION_TIMEOUT > TRACK_RELAY_TIMEOUT);
        // Reads keep their short bounds.
        assert!(CONSOLE_TIMEOUT < TRACK_RELAY_TIMEOUT);
    }
}
