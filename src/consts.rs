//! Every URN, URL path, port, header value and capacity xenplug uses, in one place.
//!
//! Code elsewhere names these constants; it never writes a URN, path or limit inline.

use std::net::Ipv4Addr;
use std::time::Duration;

// ---- SSDP (UDA 1.1 section 1) -------------------------------------------------------------

/// The SSDP IPv4 multicast group (UDA 1.1 section 1.1.2).
pub const SSDP_V4_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// The SSDP port.
pub const SSDP_PORT: u16 = 1900;
/// HOST header value of multicast SSDP messages.
pub const SSDP_HOST: &str = "239.255.255.250:1900";
/// Multicast TTL: UDA 1.1 recommends 2 hops.
pub const SSDP_MULTICAST_TTL: u32 = 2;
/// Largest SSDP datagram accepted; larger ones are dropped (a search is a few hundred bytes).
pub const SSDP_MAX_DATAGRAM: usize = 2048;
/// Buffer one emitted SSDP message is written into.
pub const SSDP_EMIT_BUFFER: usize = 1024;
/// Most header lines one SSDP message may carry before it is dropped.
pub const SSDP_MAX_HEADERS: usize = 32;
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
/// Searches answered per source address within [`SSDP_RATE_WINDOW`].
pub const SSDP_SEARCHES_PER_SOURCE: u32 = 10;
/// Window of the per-source search budget.
pub const SSDP_RATE_WINDOW: Duration = Duration::from_secs(1);
/// Sources tracked by the rate limiter; when full, the oldest entry is reused.
pub const SSDP_RATE_SOURCES: usize = 64;
/// Search responses waiting for their MX delay, at most; more searches are dropped.
pub const SSDP_MAX_PENDING_REPLIES: usize = 4096;
/// MAN value of every search, quotes included (UDA 1.1 section 1.3.2).
pub const SSDP_MAN_DISCOVER: &str = "\"ssdp:discover\"";
/// ST of a search for every device and service.
pub const SSDP_ST_ALL: &str = "ssdp:all";
/// NT / ST naming root devices.
pub const SSDP_NT_ROOT_DEVICE: &str = "upnp:rootdevice";
/// Prefix of a UDN, and of the NT / ST naming one device.
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
/// Prefix bound to [`NS_XENPLUG`] in what we emit.
pub const XENPLUG_PREFIX: &str = "xenplug";

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
/// Vendor element carrying a Domain's or VirtualMachine's Xen VM UUID.
pub const ELEMENT_VM_UUID: &str = "vmUuid";
/// Vendor element inside an SCPD action: space-separated operation semantics.
pub const ELEMENT_SEMANTICS: &str = "semantics";
/// Namespace for name-based (v5) Domain UDNs: a Domain's UDN is v5(this, VM UUID bytes), so
/// it is stable per VM and never equal to the VM UUID itself.
pub const DOMAIN_UDN_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6b, 0x1e, 0x0c, 0x5a, 0x3f, 0x7d, 0x4a, 0x52, 0x9d, 0x0e, 0x58, 0x21, 0x3c, 0x6a, 0x1f, 0x90,
]);

/// Manufacturer written in descriptions.
pub const MANUFACTURER: &str = "xenplug";
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
/// Connections waiting to be accepted, per listener.
pub const HTTP_LISTEN_BACKLOG: i32 = 128;
/// Connections served at once per listener; more wait in the kernel's backlog.
pub const HTTP_MAX_CONNECTIONS: usize = 64;
/// Requests served on one kept-alive connection before it is closed.
pub const HTTP_MAX_REQUESTS_PER_CONNECTION: usize = 100;
/// Time allowed to read one request (head and body), and to sit idle between requests.
pub const HTTP_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to write one response.
pub const HTTP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffer a response head is written into.
pub const HTTP_RESPONSE_HEAD_BUFFER: usize = 1024;
/// Pause before accepting again when `accept` fails for lack of file descriptors or memory.
pub const HTTP_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// After an answer that closes the connection, the server stops writing and reads (and
/// drops) what the client still sends for at most this long, so that the kernel does not
/// reset the connection before the client has read the answer.
pub const HTTP_LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes read and dropped while lingering, at most.
pub const HTTP_LINGER_MAX: usize = 256 * 1024;
/// Interim (1xx) responses the HTTP client skips before the final one, at most.
pub const HTTP_CLIENT_MAX_INTERIM: usize = 4;

// ---- GENA (UDA 1.1 section 4) --------------------------------------------------------------

/// Subscription duration granted when the subscriber asks for none or for infinite.
pub const GENA_DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Shortest subscription granted.
pub const GENA_MIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest subscription granted.
pub const GENA_MAX_TIMEOUT: Duration = Duration::from_secs(86400);
/// Callback URLs per SUBSCRIBE, at most (CallStranger hardening).
pub const GENA_MAX_CALLBACKS: usize = 6;
/// Length of one callback URL, at most.
pub const GENA_MAX_CALLBACK_LEN: usize = 256;
/// Subscriptions per service, at most.
pub const GENA_MAX_SUBSCRIPTIONS: usize = 64;
/// Events queued per subscription before the oldest unsent ones are merged away.
pub const GENA_MAX_QUEUED_EVENTS: usize = 32;
/// How long after the SUBSCRIBE response is written the initial event waits: GUPnP drops a
/// NOTIFY that arrives before it has processed the response and stored the SID; measured,
/// about one subscription in three lost it when the event followed at once.
pub const GENA_INITIAL_EVENT_DELAY: Duration = Duration::from_millis(200);
/// Time allowed for one NOTIFY delivery (connect, write, read the status line).
pub const GENA_NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// NT header value of SUBSCRIBE and event NOTIFY requests (UDA 1.1 section 4.1.2).
pub const GENA_NT_EVENT: &str = "upnp:event";
/// NTS header value of event NOTIFY requests (UDA 1.1 section 4.3.2).
pub const GENA_NTS_PROPCHANGE: &str = "upnp:propchange";
/// Scheme every accepted callback URL starts with (compared case-insensitively).
pub const GENA_CALLBACK_SCHEME: &str = "http://";
/// Port of a callback URL that names none.
pub const GENA_CALLBACK_DEFAULT_PORT: u16 = 80;
/// Prefix of every SID (UDA 1.1 section 4.1.2: "MUST begin with uuid:").
pub const GENA_SID_PREFIX: &str = "uuid:";
/// Length of a whole TIMEOUT header value, at most; longer ones are refused with 400.
pub const GENA_MAX_TIMEOUT_HEADER: usize = 32;
/// Length of a SID a device grants us, at most (ours are 41 bytes: `uuid:` and a UUID).
pub const GENA_MAX_SID_LEN: usize = 100;
/// Size of an event NOTIFY body (property set) parsed, at most.
pub const GENA_MAX_EVENT_BODY: usize = 64 * 1024;
/// Element nesting of a property set, at most (a real one needs 3: propertyset, property,
/// the variable).
pub const GENA_MAX_EVENT_DEPTH: usize = 8;
/// Variables in one event body, at most.
pub const GENA_MAX_EVENT_PROPERTIES: usize = 128;
/// XML nodes (elements, text runs, comments) in one event body, at most: room for
/// [`GENA_MAX_EVENT_PROPERTIES`] properties, each indented on lines of its own (about 6 nodes
/// apiece).
pub const GENA_MAX_EVENT_NODES: u32 = 1024;

// ---- SOAP ----------------------------------------------------------------------------------

/// Arguments per action, at most.
pub const SOAP_MAX_ARGUMENTS: usize = 32;
/// Depth of the SOAP envelope, at most (hostile nesting is refused before it costs anything).
pub const SOAP_MAX_DEPTH: usize = 16;
/// Size of a SOAP envelope parsed, at most (the HTTP body limit; restated so the parser does
/// not trust its caller to have applied it).
pub const SOAP_MAX_ENVELOPE: usize = HTTP_MAX_BODY;
/// XML nodes (elements, text runs, comments) in one SOAP envelope, at most: an envelope with
/// [`SOAP_MAX_ARGUMENTS`] arguments, each on its own indented line, needs about 110.
pub const SOAP_MAX_NODES: u32 = 512;
/// CONTENT-TYPE of SOAP bodies and GENA event bodies (UDA 1.1 sections 3.2 and 4.3.2).
pub const CONTENT_TYPE_XML: &str = "text/xml; charset=\"utf-8\"";
/// Suffix that turns an action name into the element of its response (UDA 1.1 section 3.2.2:
/// `<u:actionNameResponse>`).
pub const SOAP_RESPONSE_SUFFIX: &str = "Response";
/// The XML declaration opening every SOAP body we write.
pub const SOAP_XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";
/// The XML declaration opening every GENA property set (as UDA 1.1 section 4.3.2 shows it).
pub const GENA_XML_DECLARATION: &str = "<?xml version=\"1.0\"?>";

// ---- Backends and state --------------------------------------------------------------------

/// How often the sim backend looks at its directory.
pub const SIM_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// File name suffix of a sim domain.
pub const SIM_DOMAIN_SUFFIX: &str = ".domain";
/// Largest sim domain file read.
pub const SIM_MAX_FILE: u64 = 16 * 1024;
/// Default state directory (BOOTID, generated host UUID).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/xenplug";
/// How often the VM advertiser looks at its services directory and state files.
pub const SERVICES_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Backend calls running at once, at most.
pub const BACKEND_MAX_CALLS: usize = 4;

// ---- SCPD files of a VM owner's services (UDA 1.1 section 2.5) ----------------------------

/// Size of an SCPD file parsed, at most.
pub const SCPD_MAX_BYTES: usize = 64 * 1024;
/// Element nesting of an SCPD, at most (a real one needs 5: scpd, serviceStateTable,
/// stateVariable, allowedValueRange, minimum).
pub const SCPD_MAX_DEPTH: usize = 16;
/// XML nodes (elements, text runs, comments) in one SCPD, at most: more than a
/// [`SCPD_MAX_BYTES`] file of real declarations can hold.
pub const SCPD_MAX_NODES: u32 = 16 * 1024;
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

/// Size of a device description parsed, at most.
pub const DESC_MAX_BYTES: usize = 512 * 1024;
/// Element nesting of a device description, at most (a root with four levels of embedded
/// devices needs 13: root, device, then deviceList and device per level, serviceList,
/// service, SCPDURL).
pub const DESC_MAX_DEPTH: usize = 32;
/// XML nodes (elements, text runs, comments) in one device description, at most: more than
/// a [`DESC_MAX_BYTES`] document of real declarations can hold.
pub const DESC_MAX_NODES: u32 = 64 * 1024;
/// Embedded devices in one description, all levels together, at most.
pub const DESC_MAX_EMBEDDED_DEVICES: usize = 512;
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
/// Scheme of every URL a control point follows from a description (compared
/// case-insensitively).
pub const HTTP_URL_SCHEME: &str = "http://";

// ---- JSON (the tracker's read API, RFC 8259) -----------------------------------------------

/// Nesting of arrays and objects one JSON document may have, at most.
pub const JSON_MAX_DEPTH: usize = 32;

// ---- VM advertiser: the owner's services directory -----------------------------------------

/// Default `--services` directory of `advertise vm`.
pub const VM_DEFAULT_SERVICES_DIR: &str = "/etc/xenplug/services";
/// Folder of the services directory holding embedded devices (so not a service name).
pub const VM_DEVICES_FOLDER: &str = "devices";
/// A service folder's SCPD file.
pub const VM_SCPD_FILE: &str = "scpd.xml";
/// A service folder's handler executable.
pub const VM_HANDLER_FILE: &str = "handler";
/// A service folder's folder of evented state variable values, one file per variable.
pub const VM_STATE_FOLDER: &str = "state";
/// A service folder's optional `key=value` file (`type=`, `id=`).
pub const VM_SERVICE_CONF: &str = "service.conf";
/// A device folder's optional `key=value` file (`type=`, `name=`).
pub const VM_DEVICE_CONF: &str = "device.conf";
/// Prefix of the key of a top-level owner service: `svc/<Name>`.
pub const VM_SERVICE_KEY_PREFIX: &str = "svc/";
/// Prefix of the key of an embedded device's owner service: `dev/<Device>/<Name>`.
pub const VM_DEVICE_KEY_PREFIX: &str = "dev/";
/// Default serviceType of an owner service: this, its folder name, `:`, the version.
pub const URN_SERVICE_XENPLUG_PREFIX: &str = "urn:xenplug-org:service:";
/// Default serviceId of an owner service: this and its folder name.
pub const SERVICE_ID_XENPLUG_PREFIX: &str = "urn:xenplug-org:serviceId:";
/// Default deviceType of an owner's embedded device: this, its folder name, `:`, the version.
pub const URN_DEVICE_XENPLUG_PREFIX: &str = "urn:xenplug-org:device:";
/// Version of default service and device types.
pub const VM_DEFAULT_TYPE_VERSION: u32 = 1;
/// Length of a service or device folder name, at most.
pub const VM_MAX_FOLDER_NAME: usize = 64;
/// Size of a service.conf or device.conf, at most.
pub const VM_MAX_CONF_FILE: u64 = 4 * 1024;
/// Length in bytes of a friendlyName from device.conf, at most (UDA 1.1 section 2.3: "SHOULD
/// be < 64 characters").
pub const VM_MAX_FRIENDLY_NAME: usize = 64;
/// Length in bytes of one evented value read from a state file, at most; longer is cut.
pub const VM_MAX_STATE_VALUE: usize = 4 * 1024;
/// Services of one device (the VM itself or one embedded device), at most.
pub const VM_MAX_SERVICES: usize = 32;
/// Embedded devices of a VM, at most.
pub const VM_MAX_DEVICES: usize = 16;
/// A file modified less than this long ago is parsed again at the next scan even if its size,
/// time and inode look the same: file times are only as fine as the kernel's clock tick, so a
/// rewrite of the same size within one tick would otherwise go unseen (git's "racy" files).
pub const VM_FILE_TIME_TRUST: Duration = Duration::from_secs(2);

// ---- VM service handlers (`advertise vm`) --------------------------------------------------

/// Time one handler call may run before its process group is killed.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a handler may write on stdout; more and the call is killed and answers 501.
pub const HANDLER_MAX_OUTPUT: usize = 64 * 1024;
/// Bytes of a handler's stderr kept (the rest is read and dropped).
pub const HANDLER_MAX_ERROR: usize = 4 * 1024;
/// Handler calls running at once, at most; more wait for a slot.
pub const HANDLER_MAX_CALLS: usize = 8;
/// Characters of an error description taken from a handler, at most.
pub const HANDLER_MAX_DESCRIPTION: usize = 256;
/// After a handler has exited (and its process group has been killed), its pipes are read
/// for at most this long: only a process that left the group (setsid) can still hold them.
pub const HANDLER_DRAIN_GRACE: Duration = Duration::from_millis(200);
/// The only PATH a handler gets; the rest of its environment is cleared.
pub const HANDLER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Environment variable naming the service a handler is called for.
pub const HANDLER_ENV_SERVICE: &str = "XENPLUG_SERVICE";
/// Environment variable naming the action (also argv\[1\]).
pub const HANDLER_ENV_ACTION: &str = "XENPLUG_ACTION";
/// Prefix of the environment variable carrying one in-argument: `XENPLUG_ARG_<Name>`.
pub const HANDLER_ENV_ARG_PREFIX: &str = "XENPLUG_ARG_";
/// Name of the stdout line by which a failing handler chooses its UPnP error:
/// `UPnPError=<code> <description>`.
pub const HANDLER_ERROR_LINE: &str = "UPnPError";

// ---- Tracker: discovery (the control point side of SSDP) -----------------------------------

/// MX of the tracker's searches unless configured otherwise (clamped to [`SSDP_MX_MIN`]..
/// [`SSDP_MX_MAX`] like every MX).
pub const DISCOVERY_DEFAULT_SEARCH_MX: u32 = 2;
/// Devices (UDNs) tracked per network unless configured otherwise; more are dropped.
pub const DISCOVERY_DEFAULT_MAX_DEVICES: usize = 1024;
/// Shortest life granted to a device: a max-age below it is raised to it, so a device
/// announcing max-age=0 does not appear and vanish at every message. The same floor as the
/// advertisers' `--max-age`, so a tracker honours what they announce.
pub const DISCOVERY_DEFAULT_MIN_MAX_AGE: u32 = SSDP_MIN_MAX_AGE;
/// Longest life granted to a device unless configured otherwise: a silent device is
/// forgotten after this long whatever max-age it claimed.
pub const DISCOVERY_DEFAULT_MAX_MAX_AGE: u32 = 86400;
/// Search responses are accepted until MX plus this long after the last send of a search:
/// responders wait up to MX, the network adds a little.
pub const DISCOVERY_RESPONSE_GRACE: Duration = Duration::from_secs(2);
/// Every search is sent this many times (UDP is lossy), the repeat [`SSDP_REPEAT_MIN`] to
/// [`SSDP_REPEAT_MAX`] after the first.
pub const DISCOVERY_SEARCH_SENDS: usize = 2;
/// Search sends waiting per network, at most: the confirmation searches queued after a
/// byebye are dropped beyond it (an `ssdp:all` search asked by the caller always fits).
pub const DISCOVERY_MAX_PENDING_SEARCHES: usize = 8;
/// Length in bytes of a UDN kept, at most (a `uuid:` and 36 characters is 41).
pub const DISCOVERY_MAX_UDN: usize = 128;
/// Length in bytes of a LOCATION kept, at most.
pub const DISCOVERY_MAX_LOCATION: usize = 512;
/// Length in bytes of a device type kept, at most.
pub const DISCOVERY_MAX_DEVICE_TYPE: usize = 256;
/// Third field of a device type URN (`urn:<domain>:device:<type>:<version>`), as opposed to
/// `service`.
pub const URN_KIND_DEVICE: &str = "device";

// ---- Tracker repositories (flat files) -----------------------------------------------------

/// First line of every repository record (hardware, virtual, tenant slice): names the format
/// and its version.
pub const REPO_FORMAT_LINE: &str = "# xenplug-repo 1";
/// What [`REPO_FORMAT_LINE`] starts with whatever the version: a record whose first line
/// starts so but names another version was written by another xenplug and is not touched.
pub const REPO_FORMAT_PREFIX: &str = "# xenplug-repo ";
/// First line of the event journal.
pub const JOURNAL_FORMAT_LINE: &str = "# xenplug-journal 1";
/// What [`JOURNAL_FORMAT_LINE`] starts with whatever the version.
pub const JOURNAL_FORMAT_PREFIX: &str = "# xenplug-journal ";
/// Folder of the hardware configuration repository: one record per hypervisor host UUID.
pub const REPO_HARDWARE_DIR: &str = "hardware";
/// Folder of the virtual infrastructure repository: one record per VM UUID.
pub const REPO_VIRTUAL_DIR: &str = "virtual";
/// Folder of the tenant slices: `tenants/<tenant>/<vm-uuid>`.
pub const REPO_TENANTS_DIR: &str = "tenants";
/// The event journal's file name.
pub const REPO_JOURNAL_FILE: &str = "events.log";
/// File the repository owner holds an exclusive lock on, so two trackers never share one.
pub const REPO_LOCK_FILE: &str = ".lock";
/// Put between a record's name and the time when a record that does not parse is moved
/// aside: `<name>.corrupt-<unix seconds>`.
pub const REPO_CORRUPT_INFIX: &str = ".corrupt-";
/// Size of one record file, at most: larger ones are refused when written and moved aside
/// when read.
pub const REPO_MAX_RECORD: usize = 256 * 1024;
/// Length of one journal line, newline included, at most.
pub const REPO_MAX_JOURNAL_LINE: usize = 64 * 1024;
/// Most recent events kept in memory; older ones are read back from the journal.
pub const REPO_EVENTS_IN_MEMORY: usize = 1024;
/// Length of a tenant name, fact name or event detail key, at most.
pub const REPO_MAX_NAME: usize = 64;

// ---- Tracker: inventory (what the repositories hold) ---------------------------------------

/// Evented variable of the Hypervisor service: the hosted VM UUIDs, comma-separated.
pub const VARIABLE_VIRTUAL_MACHINE_IDS: &str = "VirtualMachineIds";
/// Separator of the UUIDs in [`VARIABLE_VIRTUAL_MACHINE_IDS`].
pub const VIRTUAL_MACHINE_IDS_SEPARATOR: char = ',';
/// Evented variable of the DomainControl service: the domain's run state.
pub const VARIABLE_STATE: &str = "State";
/// `state` of a hypervisor the tracker currently sees.
pub const HARDWARE_STATE_ONLINE: &str = "online";
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

/// Time allowed for one description or SCPD fetch, or one SUBSCRIBE exchange.
pub const TRACK_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at fetching a description before the device is reported undescribed.
pub const TRACK_FETCH_ATTEMPTS: u32 = 3;
/// Pause after the first failed fetch; doubled after each further failure.
pub const TRACK_FETCH_BACKOFF: Duration = Duration::from_secs(1);
/// Description fetches in flight at once, at most.
pub const TRACK_MAX_FETCHES: usize = 8;
/// How often the inventory's grace periods are looked at.
pub const TRACK_TICK: Duration = Duration::from_secs(1);
/// How often the tracker looks whether a network's interface came (back) up.
pub const TRACK_IFACE_WATCH: Duration = Duration::from_secs(2);
/// Pause before subscribing again after a SUBSCRIBE failed.
pub const TRACK_RESUBSCRIBE_RETRY: Duration = Duration::from_secs(10);
/// Longest a `GET /api/events` waits for a new event.
pub const TRACK_API_LONG_POLL: Duration = Duration::from_secs(20);
/// How often a waiting `GET /api/events` looks for a new event.
pub const TRACK_API_POLL_STEP: Duration = Duration::from_millis(200);
/// Events per `GET /api/events` answer, at most.
pub const TRACK_EVENTS_PAGE: usize = 500;
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
/// Largest API answer the console reads.
pub const CONSOLE_MAX_BODY: usize = 4 * 1024 * 1024;
/// Exit status of a console command that failed (tracker unreachable, UPnP error, refused).
pub const CONSOLE_EXIT_FAILED: i32 = 1;
/// Exit status for a usage error: unknown target or action, bad argument.
pub const CONSOLE_EXIT_USAGE: i32 = 2;

// ---- console sources (`--iface`, `--tracker`) and hypervisor targets ----------------------------

/// Prefix of a hypervisor's paths in the tracker's API (`/api/hypervisors/<uuid>/actions`:
/// the relay to its Hypervisor service, provider listeners only).
pub const API_HYPERVISORS_PREFIX: &str = "/api/hypervisors/";
/// Default `--wait` of one-shot console commands with `--iface`, in seconds: the longest they
/// wait for discovery to settle.
pub const CONSOLE_DEFAULT_WAIT_SECONDS: u64 = 8;
/// How often a settling console looks at its own tracker's tree.
pub const CONSOLE_SETTLE_STEP: Duration = Duration::from_millis(400);
/// Longest the console waits for its own tracker to report its read API address.
pub const CONSOLE_LOCAL_START: Duration = Duration::from_secs(5);
/// Longest the console waits for its own tracker's thread to stop when it exits.
pub const CONSOLE_LOCAL_STOP: Duration = Duration::from_secs(2);

// ---- XenAPI backend (`--backend xapi`) -------------------------------------------------------

/// Largest XML-RPC method response read (a pool's `VM.get_all_records` runs to megabytes).
pub const XMLRPC_MAX_RESPONSE: usize = 32 * 1024 * 1024;
/// Element nesting of an XML-RPC response, at most: each nested value costs three levels
/// (`value`, `struct`/`array`, `member`/`data`); an event batch needs about twenty.
pub const XMLRPC_MAX_DEPTH: usize = 64;
/// XML nodes of an XML-RPC response, at most.
pub const XMLRPC_MAX_NODES: u32 = 4_000_000;
/// Time allowed for one XenAPI call: connect, send, answer.
pub const XAPI_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the XenAPI backend asks for changes (`event.from`): well under a second, so a
/// change reaches the network within one.
pub const XAPI_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// `event.from` timeout in seconds: zero, so a poll never waits on the server (the poll
/// interval paces the calls).
pub const XAPI_EVENT_TIMEOUT_SECONDS: f64 = 0.0;
/// Default `--xapi-user`.
pub const XAPI_DEFAULT_USER: &str = "root";
/// API version sent at login.
pub const XAPI_LOGIN_VERSION: &str = "1.0";
/// Originator sent at login (it names the client in the server's session records).
pub const XAPI_ORIGINATOR: &str = "xenplug";
/// Largest password file read.
pub const XAPI_MAX_PASSWORD_FILE: u64 = 4096;
/// Host header sent over a unix socket, which has no host name of its own.
pub const XAPI_UNIX_HOST: &str = "localhost";

// ---- libxl backend (`--backend libxl`, the dom0 build) ---------------------------------------

/// How often the libxl backend is polled: half of the 1 s within which a domain's change must
/// reach the network.
pub const LIBXL_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Where the privcmd device is in a dom0 (either one is enough); without it libxl cannot open.
pub const XEN_PRIVCMD_PATHS: [&str; 2] = ["/dev/xen/privcmd", "/proc/xen/privcmd"];
/// Directory of xl domain config files when `--xl-config-dir` is not given.
pub const XL_DEFAULT_CONFIG_DIR: &str = "/etc/xen";
/// The xl program when `--xl` is not given (looked up on PATH).
pub const XL_DEFAULT_PROGRAM: &str = "xl";
/// Longest `xl create` may run before it is killed (a small PV guest takes about 6 s under
/// emulation).
pub const XL_CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a running `xl` is looked at.
pub const XL_WAIT_STEP: Duration = Duration::from_millis(20);
/// Largest xl config file read; bigger files are skipped.
pub const XL_CONFIG_MAX_FILE: u64 = 64 * 1024;
/// Files of the config directory looked at, at most.
pub const XL_CONFIG_MAX_FILES: usize = 1024;
/// Deepest list nesting accepted in an xl config file.
pub const XL_CONFIG_MAX_DEPTH: usize = 8;
/// Bytes of `xl`'s stderr read after it failed.
pub const XL_STDERR_MAX: usize = 64 * 1024;
/// Characters of `xl`'s error line quoted in a UPnP error description.
pub const XL_ERROR_MAX: usize = 256;

/// Longest `xl shutdown` or `xl reboot` may run before it is killed: xl waits up to 60 s for
/// the guest to acknowledge the request.
pub const XL_CONTROL_TIMEOUT: Duration = Duration::from_secs(75);

/// Directory of the images Suspend saves when `--xl-save-dir` is not given (xendomains' too).
pub const XL_DEFAULT_SAVE_DIR: &str = "/var/lib/xen/save";
/// Longest `xl save` may run before it is killed: it writes the whole of the domain's memory
/// (a 128 MiB guest takes a few seconds under emulation; 16 GiB at 100 MB/s takes under 3
/// minutes).
pub const XL_SAVE_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest `xl restore` may run before it is killed: it reads the image back.
pub const XL_RESTORE_TIMEOUT: Duration = Duration::from_secs(300);
/// Files of the save directory looked at, at most.
pub const XL_SAVE_MAX_FILES: usize = 4096;
/// Largest sidecar record read, in bytes.
pub const XL_SAVE_RECORD_MAX: u64 = 16 * 1024;

// ---- console web page (`xenplug console serve`) -----------------------------------------------

/// Largest form body the console's page may POST (one action's arguments).
pub const CONSOLE_WEB_MAX_FORM: usize = 16 * 1024;
/// Path of the DomainControl description (actions, arguments, types) the page reads.
pub const CONSOLE_WEB_DOMAIN_CONTROL_PATH: &str = "/domain-control.json";
/// Path of the Hypervisor service's description (actions, arguments, types) the page reads.
pub const CONSOLE_WEB_HYPERVISOR_PATH: &str = "/hypervisor.json";
/// Content-Security-Policy of every answer of the console's page: nothing but its own files.
pub const CONSOLE_WEB_CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Events of each source the console's page server keeps for the pages that poll it (older
/// ones are dropped: a page that falls further behind reads the tree again anyway).
pub const CONSOLE_WEB_EVENTS_KEPT: usize = 256;
/// Separator of the per-source sequence numbers in the page's events cursor (`12.7`).
pub const CONSOLE_WEB_CURSOR_SEPARATOR: char = '.';

// ---- demo (`xenplug demo`: every role on loopback, supervised) --------------------------------

/// The only interface the demo's children ever get.
pub const DEMO_IFACE: &str = "lo";
/// Label of the demo tracker's provider network (hypervisors), on [`DEMO_IFACE`].
pub const DEMO_PROVIDER_NETWORK: &str = "mgmt";
/// Label of the demo tracker's tenant network (VMs), on [`DEMO_IFACE`] as well.
pub const DEMO_TENANT_NETWORK: &str = "acme";
/// Longest the demo waits for its tracker's read API to accept connections.
pub const DEMO_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the demo waits for the tree to show every simulated host, VM, state and service
/// before it prints what there is.
pub const DEMO_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the demo looks at its children, the signals and (while starting) the tree.
pub const DEMO_POLL: Duration = Duration::from_millis(100);
/// Time one request of the demo to its tracker may take.
pub const DEMO_API_TIMEOUT: Duration = Duration::from_secs(2);
/// Time the children get to exit after SIGTERM before SIGKILL.
pub const DEMO_STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a child's log the demo prints when that child stops unexpectedly.
pub const DEMO_LOG_TAIL_LINES: usize = 20;
/// Bytes read from the end of that log to find those lines.
pub const DEMO_LOG_TAIL_BYTES: u64 = 16 * 1024;
/// Names tried for a fresh temporary directory before giving up.
pub const DEMO_TEMP_ATTEMPTS: u32 = 16;
/// How often the demo reads its sim directories to start or stop the VM advertiser of a
/// domain whose guest started or stopped running.
pub const DEMO_FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

// ---- who may call mutating hypervisor actions (`--allow-control`) ------------------------------

/// The `--allow-control` word that lets every admitted peer (any host of the interfaces'
/// subnets) call mutating actions: the behaviour before the allow-list existed.
pub const ALLOW_CONTROL_ANY: &str = "any";
/// Loopback, always part of the default allow-list (127.0.0.0/8).
pub const LOOPBACK_NETWORK: (std::net::Ipv4Addr, u8) = (std::net::Ipv4Addr::new(127, 0, 0, 0), 8);
/// Networks one hypervisor's `--allow-control` may name (a bound on what a check walks).
pub const ALLOW_CONTROL_MAX: usize = 64;

// ---- GENA subscriptions kept across refetches, long control calls through the relay ---------

/// Longest the tracker waits for the answer to an UNSUBSCRIBE of a subscription it no longer
/// wants: best effort, the publisher ends it anyway when its TIMEOUT runs out.
pub const TRACK_UNSUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
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
/// Longest delay [`SIM_DELAY_KEY`] may ask for; larger values are cut to it (a simulated
/// operation is never slower than the slowest real one).
pub const SIM_MAX_DELAY: Duration = BACKEND_LONGEST_CALL;

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
