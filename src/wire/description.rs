//! Wire layer: device descriptions and SCPDs (UDA 1.1 sections 2.3 and 2.5) as bytes. No
//! I/O, no clock; the parser never panics on any input.
//!
//! Device side: rendered once per model change into a kept buffer; serving copies those
//! bytes. Control-point side: [`parse_description`] reads the description of any UPnP
//! device (xenplug's or a third party's) into owned plain data, under hard limits.

use roxmltree::Node;

use super::xml::{self, Limits, Sink};
use super::Result;
use crate::consts::{
    DESC_BYTES_PER_DEVICE, DESC_MAX_BYTES, DESC_MAX_CONFIG_ID, DESC_MAX_DEVICE_NESTING,
    DESC_MAX_SERVICES, DESC_MAX_TEXT, ELEMENT_SEMANTICS, HTTP_URL_SCHEME, NS_DEVICE, NS_SERVICE,
    NS_XENPLUG, VERSION,
};
use crate::model::{Device, Direction, ServiceSpec};

/// Prefix bound to [`NS_XENPLUG`] in what we emit.
const XENPLUG_PREFIX: &str = "xenplug";
/// Vendor element carrying a Domain's or VirtualMachine's Xen VM UUID.
const ELEMENT_VM_UUID: &str = "vmUuid";
/// Manufacturer written in descriptions.
const MANUFACTURER: &str = "xenplug";
/// Element nesting of a device description, at most (a root with four levels of embedded
/// devices needs 13: root, device, then deviceList and device per level, serviceList,
/// service, SCPDURL).
const DESC_MAX_DEPTH: usize = 32;
/// A description holds at most one XML node (element, text run, comment) per this many bytes
/// of its size limit: more than real declarations need (xenplug's Domain: 46 nodes in about
/// 800 bytes), and it bounds the parse tree's memory by the size limit.
const DESC_BYTES_PER_NODE: usize = 8;

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";

/// Writes `<xenplug:local>` (with `opener` "<") or `</xenplug:local>` (with "</").
fn vendor_tag(out: &mut impl Sink, opener: &str, local: &str) -> Result<()> {
    out.put_str(opener)?;
    out.put_str(XENPLUG_PREFIX)?;
    out.put_str(":")?;
    out.put_str(local)?;
    out.put_str(">")
}

/// Opens a root element with the default and vendor namespaces and the configId attribute.
fn open_root(out: &mut impl Sink, name: &str, namespace: &str, config_id: u32) -> Result<()> {
    out.put_str(XML_DECLARATION)?;
    out.put_str("<")?;
    out.put_str(name)?;
    out.put_str(" xmlns=\"")?;
    out.put_str(namespace)?;
    out.put_str("\" xmlns:")?;
    out.put_str(XENPLUG_PREFIX)?;
    out.put_str("=\"")?;
    out.put_str(NS_XENPLUG)?;
    out.put_str("\" configId=\"")?;
    let mut digits = [0u8; 10];
    let mut cursor = super::Cursor::new(&mut digits);
    cursor.put_u64(u64::from(config_id))?;
    out.put(cursor.written())?;
    out.put_str("\">\n")
}

/// Renders the description document of the device tree `root`.
pub fn render_description(root: &Device, config_id: u32, out: &mut impl Sink) -> Result<()> {
    open_root(out, "root", NS_DEVICE, config_id)?;
    out.put_str("<specVersion><major>1</major><minor>1</minor></specVersion>\n")?;
    render_device(root, out)?;
    out.put_str("</root>\n")
}

/// One line per device, an embedded one's on lines of their own: a line break between two
/// elements is a text node to every DOM parser, and at a thousand Domains the breaks inside
/// each device made a fifth of the nodes a control point had to hold to read it.
fn render_device(device: &Device, out: &mut impl Sink) -> Result<()> {
    out.put_str("<device>")?;
    out.put_element("deviceType", &device.device_type)?;
    out.put_element("friendlyName", &device.friendly_name)?;
    out.put_element("manufacturer", MANUFACTURER)?;
    out.put_element("modelDescription", &device.model_description)?;
    out.put_element("modelName", &device.model_name)?;
    out.put_element("modelNumber", VERSION)?;
    out.put_str("<UDN>uuid:")?;
    out.put_str(
        device
            .udn
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    )?;
    out.put_str("</UDN>")?;
    if !device.services.is_empty() {
        out.put_str("<serviceList>")?;
        for service in &device.services {
            out.put_str("<service>")?;
            out.put_element("serviceType", &service.spec.service_type)?;
            out.put_element("serviceId", &service.spec.service_id)?;
            out.put_element("SCPDURL", &service.spec.scpd_url())?;
            out.put_element("controlURL", &service.control_url())?;
            out.put_element("eventSubURL", &service.event_url())?;
            out.put_str("</service>")?;
        }
        out.put_str("</serviceList>")?;
    }
    if !device.devices.is_empty() {
        out.put_str("<deviceList>\n")?;
        for embedded in &device.devices {
            render_device(embedded, out)?;
        }
        out.put_str("</deviceList>\n")?;
    }
    if let Some(vm_uuid) = device.vm_uuid {
        vendor_tag(out, "<", ELEMENT_VM_UUID)?;
        out.put_str(
            vm_uuid
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        )?;
        vendor_tag(out, "</", ELEMENT_VM_UUID)?;
    }
    out.put_str("</device>\n")
}

/// Renders the SCPD of a service type.
pub fn render_scpd(spec: &ServiceSpec, config_id: u32, out: &mut impl Sink) -> Result<()> {
    open_root(out, "scpd", NS_SERVICE, config_id)?;
    out.put_str("<specVersion><major>1</major><minor>1</minor></specVersion>\n<actionList>\n")?;
    for action in &spec.actions {
        out.put_str("<action>")?;
        out.put_element("name", &action.name)?;
        if !action.arguments.is_empty() {
            out.put_str("<argumentList>")?;
            for argument in &action.arguments {
                out.put_str("<argument>")?;
                out.put_element("name", &argument.name)?;
                let direction = match argument.direction {
                    Direction::In => "in",
                    Direction::Out => "out",
                };
                out.put_element("direction", direction)?;
                out.put_element("relatedStateVariable", &argument.variable)?;
                out.put_str("</argument>")?;
            }
            out.put_str("</argumentList>")?;
        }
        if !action.semantics.is_empty() {
            vendor_tag(out, "<", ELEMENT_SEMANTICS)?;
            for (index, semantic) in action.semantics.iter().enumerate() {
                if index > 0 {
                    out.put_str(" ")?;
                }
                out.put_str(semantic.as_str())?;
            }
            vendor_tag(out, "</", ELEMENT_SEMANTICS)?;
        }
        out.put_str("</action>\n")?;
    }
    out.put_str("</actionList>\n<serviceStateTable>\n")?;
    for variable in &spec.variables {
        out.put_str(if variable.evented {
            "<stateVariable sendEvents=\"yes\">"
        } else {
            "<stateVariable sendEvents=\"no\">"
        })?;
        out.put_element("name", &variable.name)?;
        out.put_element("dataType", &variable.data_type)?;
        if !variable.allowed.is_empty() {
            out.put_str("<allowedValueList>")?;
            for value in &variable.allowed {
                out.put_element("allowedValue", value)?;
            }
            out.put_str("</allowedValueList>")?;
        }
        out.put_str("</stateVariable>\n")?;
    }
    out.put_str("</serviceStateTable>\n</scpd>\n")
}

// ---- Parsing (control-point side) ----------------------------------------------------------

/// The bounds a device description is read under, all derived from the largest size read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptionLimits {
    /// Bytes, at most.
    pub max_bytes: usize,
    /// Embedded devices, all levels together, at most: one per [`DESC_BYTES_PER_DEVICE`].
    pub max_embedded_devices: usize,
    /// XML nodes, at most: one per `DESC_BYTES_PER_NODE` (8) bytes.
    pub max_nodes: u32,
}

impl DescriptionLimits {
    /// The bounds for descriptions of at most `max_bytes`.
    pub const fn for_size(max_bytes: usize) -> DescriptionLimits {
        let nodes = max_bytes / DESC_BYTES_PER_NODE;
        DescriptionLimits {
            max_bytes,
            max_embedded_devices: max_bytes / DESC_BYTES_PER_DEVICE,
            max_nodes: if nodes > u32::MAX as usize {
                u32::MAX
            } else {
                nodes as u32
            },
        }
    }

    /// The XML parser's share of them.
    fn xml(&self) -> Limits {
        Limits {
            max_bytes: self.max_bytes,
            max_depth: DESC_MAX_DEPTH,
            max_nodes: self.max_nodes,
        }
    }
}

/// Limits a device description is parsed under unless configured otherwise.
pub const DESCRIPTION_LIMITS: DescriptionLimits = DescriptionLimits::for_size(DESC_MAX_BYTES);

/// A device description as a control point read it: plain owned data, URLs resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// `configId` attribute of `root`; `None` when absent or not a 31-bit decimal.
    pub config_id: Option<u32>,
    /// URLBase as written, when given and not empty (deprecated since UDA 1.1, but UPnP 1.0
    /// devices still send it).
    pub url_base: Option<String>,
    /// The root device.
    pub root: DescribedDevice,
    /// What was tolerated rather than refused: services left out for an unusable URL, an
    /// unusable URLBase or configId. One sentence each, meant to be logged.
    pub warnings: Vec<String>,
}

/// One device of a parsed description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedDevice {
    /// deviceType.
    pub device_type: String,
    /// UDN as written (`uuid:...`).
    pub udn: String,
    /// friendlyName.
    pub friendly_name: String,
    /// manufacturer, empty when absent.
    pub manufacturer: String,
    /// modelName, empty when absent.
    pub model_name: String,
    /// `vmUuid` in xenplug's namespace, as written; see [`vm_uuid`].
    pub vm_uuid: Option<String>,
    /// serviceList, without the services whose URLs could not be used.
    pub services: Vec<DescribedService>,
    /// deviceList (embedded devices).
    pub devices: Vec<DescribedDevice>,
}

impl DescribedDevice {
    /// This device and every embedded one, depth first.
    pub fn walk(&self) -> Vec<&DescribedDevice> {
        let mut all = vec![self];
        for device in &self.devices {
            all.extend(device.walk());
        }
        all
    }
}

/// One service of a parsed description, its URLs absolute (`http://host:port/path`) or
/// empty where the description left them empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedService {
    /// serviceType.
    pub service_type: String,
    /// serviceId.
    pub service_id: String,
    /// SCPDURL, resolved.
    pub scpd_url: String,
    /// controlURL, resolved.
    pub control_url: String,
    /// eventSubURL, resolved; empty for a service without evented variables (UDA 1.1
    /// section 2.3: the element "MUST be present but MUST be empty").
    pub event_url: String,
}

/// The UUID of a UDN: `uuid:` in any case, then a UUID, surrounding whitespace ignored (UDA
/// 1.1 section 1.1.4 writes the prefix in lower case; some stacks do not). `None` for anything
/// else. Every part of xenplug that reads a UDN reads it with this, so that no two of them can
/// disagree on which device a UDN names.
pub fn udn_uuid(udn: &str) -> Option<uuid::Uuid> {
    let udn = udn.trim();
    let prefix = udn.get(..crate::consts::UDN_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(crate::consts::UDN_PREFIX) {
        return None;
    }
    uuid::Uuid::try_parse(udn.get(crate::consts::UDN_PREFIX.len()..)?).ok()
}

/// The Xen VM UUID a device stands for, from its `xenplug:vmUuid` element; `None` when the
/// element is absent or does not hold a UUID.
pub fn vm_uuid(device: &DescribedDevice) -> Option<uuid::Uuid> {
    device
        .vm_uuid
        .as_deref()
        .and_then(|text| uuid::Uuid::try_parse(text).ok())
}

/// Why a device description was refused: a sentence naming the offending device or field,
/// meant to be logged once beside the LOCATION it came from.
pub type DescriptionError = xml::Refused;

type ParseResult<T> = core::result::Result<T, DescriptionError>;

/// Parses the device description `bytes` fetched from `base` (the LOCATION URL).
///
/// - The root is `root` in `urn:schemas-upnp-org:device-1-0` and holds one `device`.
///   Elements are matched by namespace and local name, so any prefix works; unknown
///   elements (iconList, presentationURL, other vendors' elements) are skipped.
/// - Each device needs a non-empty deviceType, friendlyName and UDN; UDNs are unique within
///   the description. manufacturer and modelName may be absent (then empty). An element
///   given twice is an error.
/// - Text fields are trimmed, hold no child element and no control character, and are at
///   most [`DESC_MAX_TEXT`] bytes.
/// - At most [`DESCRIPTION_LIMITS`]' embedded devices in all (one per
///   [`DESC_BYTES_PER_DEVICE`] bytes of the size limit), nested at most
///   [`DESC_MAX_DEVICE_NESTING`] levels below the root, and [`DESC_MAX_SERVICES`] services
///   per device.
/// - Service URLs are resolved against URLBase if given, else against `base` (UDA 1.1
///   section 2.3: relative URLs are relative to the URL the description was fetched from):
///   absolute `http://` URLs are kept as written, absolute paths are joined to the base's
///   `http://host:port`, relative paths to the base's directory (RFC 3986 section 5.2, dot
///   segments removed); an empty URL stays empty. Anything else (another scheme, a
///   `//host/path` reference, a space, a control or non-ASCII character) leaves that service
///   out, with a line in [`Described::warnings`].
///
/// `base` must be an absolute `http://` URL. The resolved URLs may name any host: a caller
/// that fetches them applies the same host checks as for LOCATION.
pub fn parse_description(bytes: &[u8], base: &str) -> ParseResult<Described> {
    parse_description_within(bytes, base, &DESCRIPTION_LIMITS)
}

/// [`parse_description`] under `limits` rather than [`DESCRIPTION_LIMITS`].
pub fn parse_description_within(
    bytes: &[u8],
    base: &str,
    limits: &DescriptionLimits,
) -> ParseResult<Described> {
    let location = BaseUrl::parse(base).ok_or_else(|| {
        DescriptionError::new(format!(
            "the description URL {} is not an absolute http URL",
            shown(base)
        ))
    })?;
    let bytes = xml::without_byte_order_mark(bytes);
    let explain = |error| DescriptionError::new(limits.xml().explain(error));
    let text = xml::check_bounded(bytes, limits.xml()).map_err(explain)?;
    if let Some(described) = read_in_pieces(text, location, limits) {
        return Ok(described);
    }
    let document = xml::parse_checked(text, limits.max_nodes).map_err(explain)?;
    read_document(&document, location, limits, |_, _, _| Ok(()))
}

/// The path to the root device's deviceList, which holds nearly all of a large description.
const ROOT_DEVICE_LIST: [&str; 3] = ["root", "device", "deviceList"];

/// Reads a description whose root device lists its embedded devices plainly (see
/// [`xml::find_children`]) one embedded device at a time: the root device's part of the
/// document first, then each embedded device parsed on its own. A host of a thousand domains
/// then never has a tree of the whole document (1.7 MB beside its 0.8 MB of text) in memory.
///
/// `None` whenever this way is not certain to give what one tree would: the list cannot be
/// found plainly, the element found is not the deviceList the reader takes, or any part is
/// refused or too large. The caller then parses the whole document, which also gives the
/// error a refused description is known by.
fn read_in_pieces(
    text: &str,
    location: BaseUrl<'_>,
    limits: &DescriptionLimits,
) -> Option<Described> {
    // roxmltree refuses a tree of more than 65,536 distinct namespaces (its own `xml` one
    // included), which no piece alone may reach: with that many declarations, read one tree.
    if text.matches("xmlns").count() >= usize::from(u16::MAX) {
        return None;
    }
    // A list of more elements than the limit admits devices is read as one tree, which
    // refuses it or skips the strangers; here it would only cost memory.
    let children = xml::find_children(text, &ROOT_DEVICE_LIST, limits.max_embedded_devices)?;
    let outline_text = children.without_content(text);
    let outline = xml::parse_checked(&outline_text, limits.max_nodes).ok()?;
    // Nodes of the whole document: the outline's, each piece's own, and the white space.
    let mut nodes = outline.descendants().count() + children.gaps;
    // The document node and the copied ancestors, which each piece has and the whole only once.
    let wrapping = 1 + ROOT_DEVICE_LIST.len();
    let more_devices = |reader: &mut Reader<'_>,
                        device: Node<'_, '_>,
                        root: &mut DescribedDevice| {
        let not_in_pieces = || DescriptionError::new("not readable in pieces");
        let list = single_child(device, "deviceList")?.ok_or_else(not_in_pieces)?;
        let root_element = device.parent_element().ok_or_else(not_in_pieces)?;
        let found = children.positions.iter().map(|&position| Some(position));
        if !found.eq([root_element, device, list].map(element_position)) {
            return Err(not_in_pieces());
        }
        root.devices.reserve_exact(children.elements.len());
        let mut piece = String::new();
        for element in &children.elements {
            children.standalone(text, element, &mut piece);
            let budget = (limits.max_nodes as usize + wrapping).saturating_sub(nodes);
            let document = xml::parse_checked(&piece, u32::try_from(budget).unwrap_or(u32::MAX))
                .map_err(|_| not_in_pieces())?;
            nodes += document.descendants().count() - wrapping;
            if nodes > limits.max_nodes as usize {
                return Err(not_in_pieces());
            }
            let entry = document
                .descendants()
                .nth(wrapping)
                .filter(|entry| is_upnp(*entry, "device"));
            if let Some(entry) = entry {
                reader.embedded += 1;
                if reader.embedded > reader.max_embedded {
                    return Err(not_in_pieces());
                }
                root.devices
                    .push(reader.device(entry, 1, "embedded device")?);
            }
        }
        Ok(())
    };
    read_document(&outline, location, limits, more_devices).ok()
}

/// Where `node` stands among its parent's child elements (0 for the first).
fn element_position(node: Node<'_, '_>) -> Option<usize> {
    let parent = node.parent()?;
    parent
        .children()
        .filter(Node::is_element)
        .position(|child| child == node)
}

/// Reads a parsed description. `more_devices` is given the reader, the root device's
/// element and what was read of it, to add embedded devices read from elsewhere.
fn read_document<F>(
    document: &roxmltree::Document<'_>,
    location: BaseUrl<'_>,
    limits: &DescriptionLimits,
    more_devices: F,
) -> ParseResult<Described>
where
    F: FnOnce(&mut Reader<'_>, Node<'_, '_>, &mut DescribedDevice) -> ParseResult<()>,
{
    let root = document.root_element();
    if !is_upnp(root, "root") {
        return Err(DescriptionError::new(format!(
            "the root element is not root in namespace {NS_DEVICE}"
        )));
    }
    let mut warnings = Vec::new();
    let config_id = match root.attribute("configId") {
        None => None,
        Some(text) => {
            let parsed = parse_config_id(text);
            if parsed.is_none() {
                warnings.push(format!(
                    "configId {} is not a 31-bit decimal number; ignored",
                    shown(text)
                ));
            }
            parsed
        }
    };
    let url_base = match single_child(root, "URLBase")? {
        Some(node) => Some(text_field(node)?).filter(|text| !text.is_empty()),
        None => None,
    };
    let resolve_base = match url_base.as_deref() {
        None => location,
        Some(text) => BaseUrl::parse(text).unwrap_or_else(|| {
            warnings.push(format!(
                "URLBase {} is not an absolute http URL; URLs are resolved against the \
                 description URL",
                shown(text)
            ));
            location
        }),
    };
    let device = single_child(root, "device")?
        .ok_or_else(|| DescriptionError::new("the root device is missing"))?;
    let mut reader = Reader {
        base: resolve_base,
        embedded: 0,
        max_embedded: limits.max_embedded_devices,
        warnings,
    };
    let mut root_device = reader.device(device, 0, "root device")?;
    more_devices(&mut reader, device, &mut root_device)?;
    check_unique_udns(&root_device)?;
    let warnings = reader.warnings;
    Ok(Described {
        config_id,
        url_base,
        root: root_device,
        warnings,
    })
}

/// Walks the device tree, counting embedded devices and collecting warnings.
struct Reader<'a> {
    base: BaseUrl<'a>,
    embedded: usize,
    /// Embedded devices allowed in all.
    max_embedded: usize,
    warnings: Vec<String>,
}

impl Reader<'_> {
    /// Parses one `device` element at `level` (the root is 0); errors name the device by its
    /// UDN, or by `label` when the UDN itself is the problem.
    fn device(
        &mut self,
        node: Node<'_, '_>,
        level: usize,
        label: &str,
    ) -> ParseResult<DescribedDevice> {
        let udn = required_text(node, "UDN").map_err(|error| error.within(label))?;
        let context = format!("device {}", shown(&udn));
        self.device_fields(node, level, udn)
            .map_err(|error| error.within(&context))
    }

    fn device_fields(
        &mut self,
        node: Node<'_, '_>,
        level: usize,
        udn: String,
    ) -> ParseResult<DescribedDevice> {
        let device_type = required_text(node, "deviceType")?;
        let friendly_name = required_text(node, "friendlyName")?;
        let manufacturer = optional_text(node, "manufacturer")?;
        let model_name = optional_text(node, "modelName")?;
        let vm_uuid = vendor_text(node, ELEMENT_VM_UUID)?.filter(|text| !text.is_empty());
        let mut services = Vec::new();
        if let Some(list) = single_child(node, "serviceList")? {
            let entries: Vec<Node<'_, '_>> = list
                .children()
                .filter(|child| is_upnp(*child, "service"))
                .collect();
            if entries.len() > DESC_MAX_SERVICES {
                return Err(DescriptionError::new(format!(
                    "more than {DESC_MAX_SERVICES} services"
                )));
            }
            // Sized once: grown one push at a time, a device's one service left room for
            // four, a quarter of what a thousand Domains' descriptions held while read.
            services.reserve_exact(entries.len());
            for (index, entry) in entries.into_iter().enumerate() {
                let context = format!("service {}", index + 1);
                match self.service(entry, &context)? {
                    Ok(service) => services.push(service),
                    Err(reason) => self.warnings.push(format!(
                        "device {}: {context}: {reason}; the service is left out",
                        shown(&udn)
                    )),
                }
            }
        }
        let mut devices = Vec::new();
        if let Some(list) = single_child(node, "deviceList")? {
            let entries: Vec<Node<'_, '_>> = list
                .children()
                .filter(|child| is_upnp(*child, "device"))
                .collect();
            if !entries.is_empty() && level >= DESC_MAX_DEVICE_NESTING {
                return Err(DescriptionError::new(format!(
                    "embedded devices nested more than {DESC_MAX_DEVICE_NESTING} levels deep"
                )));
            }
            // Counted before any is read, so a list of thousands costs one pass.
            if self.embedded + entries.len() > self.max_embedded {
                return Err(DescriptionError::new(format!(
                    "more than {} embedded devices",
                    self.max_embedded
                )));
            }
            let first = self.embedded;
            self.embedded += entries.len();
            devices.reserve_exact(entries.len());
            for (index, entry) in entries.into_iter().enumerate() {
                let label = format!("embedded device {}", first + index + 1);
                devices.push(self.device(entry, level + 1, &label)?);
            }
        }
        Ok(DescribedDevice {
            device_type,
            udn,
            friendly_name,
            manufacturer,
            model_name,
            vm_uuid,
            services,
            devices,
        })
    }

    /// Parses one `service` element. The outer error refuses the description; the inner one
    /// (an unusable URL) only leaves this service out.
    fn service(
        &self,
        node: Node<'_, '_>,
        context: &str,
    ) -> ParseResult<core::result::Result<DescribedService, String>> {
        let text = |local: &str| optional_text(node, local).map_err(|error| error.within(context));
        let service_type = text("serviceType")?;
        let service_id = text("serviceId")?;
        let scpd = text("SCPDURL")?;
        let control = text("controlURL")?;
        let event = text("eventSubURL")?;
        Ok(self.resolved(service_type, service_id, [&scpd, &control, &event]))
    }

    /// The service with its SCPDURL, controlURL and eventSubURL (in that order in `urls`)
    /// resolved, or why one of them cannot be used.
    fn resolved(
        &self,
        service_type: String,
        service_id: String,
        [scpd, control, event]: [&str; 3],
    ) -> core::result::Result<DescribedService, String> {
        let resolve = |name: &str, url: &str| {
            self.base
                .resolve(url)
                .map_err(|reason| format!("{name} {}: {reason}", shown(url)))
        };
        Ok(DescribedService {
            service_type,
            service_id,
            scpd_url: resolve("SCPDURL", scpd)?,
            control_url: resolve("controlURL", control)?,
            event_url: resolve("eventSubURL", event)?,
        })
    }
}

/// Refuses a description in which two devices share a UDN: SSDP and the tracker name
/// devices by UDN alone.
fn check_unique_udns(root: &DescribedDevice) -> ParseResult<()> {
    let mut seen = std::collections::BTreeSet::new();
    for device in root.walk() {
        if !seen.insert(device.udn.as_str()) {
            return Err(DescriptionError::new(format!(
                "UDN {} is given to two devices",
                shown(&device.udn)
            )));
        }
    }
    Ok(())
}

/// The configId attribute: the value of CONFIGID.UPNP.ORG, which UDA 1.1 section 1.1.3
/// makes "a non-negative, 31-bit integer, ASCII encoded, decimal" whose leading zeros "MUST
/// be ignored by the recipient".
fn parse_config_id(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = text.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    digits
        .parse::<u32>()
        .ok()
        .filter(|&value| value <= DESC_MAX_CONFIG_ID)
}

fn is_upnp(node: Node<'_, '_>, local: &str) -> bool {
    xml::is_element(node, NS_DEVICE, local)
}

fn is_xenplug(node: Node<'_, '_>, local: &str) -> bool {
    xml::is_element(node, NS_XENPLUG, local)
}

/// The one child of `parent` that `matches`, if any; two is an error naming `local`.
fn single<'a, 'input>(
    parent: Node<'a, 'input>,
    local: &str,
    matches: impl Fn(Node<'a, 'input>) -> bool,
) -> ParseResult<Option<Node<'a, 'input>>> {
    xml::single_child(parent, matches)
        .map_err(|_| DescriptionError::new(format!("{local} is given more than once")))
}

/// The one child `local` of `parent` in the UPnP device namespace, if any.
fn single_child<'a, 'input>(
    parent: Node<'a, 'input>,
    local: &str,
) -> ParseResult<Option<Node<'a, 'input>>> {
    single(parent, local, |child| is_upnp(child, local))
}

/// The trimmed text of `node`: no child element, no control character, at most
/// [`DESC_MAX_TEXT`] bytes.
fn text_field(node: Node<'_, '_>) -> ParseResult<String> {
    let name = node.tag_name().name();
    // At most the document's size: parse_bounded has applied its size limit.
    let text = xml::element_text(node)
        .ok_or_else(|| DescriptionError::new(format!("{name} must hold text, not elements")))?;
    let trimmed = text.as_str();
    if trimmed.len() > DESC_MAX_TEXT {
        return Err(DescriptionError::new(format!(
            "{name} is longer than {DESC_MAX_TEXT} bytes"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DescriptionError::new(format!(
            "{name} holds a control character"
        )));
    }
    Ok(trimmed.to_string())
}

/// The text of the single child `local`, which must be present and not empty.
fn required_text(parent: Node<'_, '_>, local: &str) -> ParseResult<String> {
    let child = single_child(parent, local)?
        .ok_or_else(|| DescriptionError::new(format!("{local} is missing")))?;
    let text = text_field(child)?;
    if text.is_empty() {
        return Err(DescriptionError::new(format!("{local} is empty")));
    }
    Ok(text)
}

/// The text of the single child `local`, empty when absent.
fn optional_text(parent: Node<'_, '_>, local: &str) -> ParseResult<String> {
    match single_child(parent, local)? {
        Some(child) => text_field(child),
        None => Ok(String::new()),
    }
}

/// The text of the single child `local` in xenplug's namespace, if present.
fn vendor_text(parent: Node<'_, '_>, local: &str) -> ParseResult<Option<String>> {
    single(parent, local, |child| is_xenplug(child, local))?
        .map(text_field)
        .transpose()
}

/// Characters of a hostile value shown in an error.
const SHOWN_CHARS: usize = 64;

/// `text` quoted for a log line (see [`xml::shown`]).
fn shown(text: &str) -> String {
    xml::shown(text, SHOWN_CHARS)
}

/// An absolute http URL split for resolving references against it.
#[derive(Debug, Clone, Copy)]
struct BaseUrl<'a> {
    /// `http://host:port`, as written.
    origin: &'a str,
    /// The path, without query or fragment; empty or starting with `/`.
    path: &'a str,
}

impl<'a> BaseUrl<'a> {
    /// `url` split, if it is an absolute http URL with a host.
    fn parse(url: &'a str) -> Option<BaseUrl<'a>> {
        check_url_characters(url).ok()?;
        let rest = strip_http(url)?;
        let authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if authority == 0 {
            return None;
        }
        let origin = url.get(..HTTP_URL_SCHEME.len() + authority)?;
        let after = rest.get(authority..)?;
        let path = after.get(..after.find(['?', '#']).unwrap_or(after.len()))?;
        Some(BaseUrl { origin, path })
    }

    /// `reference` made absolute against this base (RFC 3986 section 5.2, for the forms a
    /// description uses); an empty reference stays empty.
    fn resolve(&self, reference: &str) -> core::result::Result<String, &'static str> {
        if reference.is_empty() {
            return Ok(String::new());
        }
        check_url_characters(reference)?;
        if let Some(rest) = strip_http(reference) {
            if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
                return Err("an http URL without a host");
            }
            return Ok(reference.to_string());
        }
        if reference.starts_with("//") {
            return Err("a reference to another host without a scheme is not followed");
        }
        if has_scheme(reference) {
            return Err("not an http URL");
        }
        let split = reference.find(['?', '#']).unwrap_or(reference.len());
        let (path, suffix) = reference.split_at_checked(split).unwrap_or((reference, ""));
        let merged = if path.is_empty() {
            self.path.to_string()
        } else if path.starts_with('/') {
            path.to_string()
        } else {
            let directory = match self.path.rfind('/') {
                Some(slash) => self.path.get(..=slash).unwrap_or("/"),
                None => "/",
            };
            format!("{directory}{path}")
        };
        let path = remove_dot_segments(&merged);
        let path = if path.is_empty() { "/" } else { path.as_str() };
        Ok(format!("{}{path}{suffix}", self.origin))
    }
}

/// The part after `http://` (scheme compared case-insensitively), if `url` starts with it.
fn strip_http(url: &str) -> Option<&str> {
    let scheme = url.get(..HTTP_URL_SCHEME.len())?;
    if scheme.eq_ignore_ascii_case(HTTP_URL_SCHEME) {
        url.get(HTTP_URL_SCHEME.len()..)
    } else {
        None
    }
}

/// Whether `reference` starts with a scheme (RFC 3986 section 3.1: a letter, then letters,
/// digits, `+`, `-` or `.`, then `:` before any `/`, `?` or `#`).
fn has_scheme(reference: &str) -> bool {
    let Some(colon) = reference.find(':') else {
        return false;
    };
    let scheme = reference.get(..colon).unwrap_or_default();
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A URL goes into an HTTP request line: printable ASCII only, no space.
fn check_url_characters(url: &str) -> core::result::Result<(), &'static str> {
    if url.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("holds a space, a control or a non-ASCII character")
    }
}

/// RFC 3986 section 5.2.4 for an absolute path: `.` and `..` segments removed, `..` never
/// climbing above the root.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let count = segments.len();
    for (index, segment) in segments.into_iter().enumerate() {
        let last = index + 1 == count;
        match segment {
            "." => {}
            ".." => {
                kept.pop();
            }
            other => {
                kept.push(other);
                continue;
            }
        }
        if last {
            // "/a/b/.." is "/a/": the directory, with its slash.
            kept.push("");
        }
    }
    format!("/{}", kept.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Domain, HostInfo, RunState};
    use crate::control::{hypervisor_device, HostView};
    use crate::model::Service;
    use std::sync::Arc;
    use uuid::Uuid;

    const LOCATION: &str = "http://127.0.0.1:49152/description.xml";
    const ORIGIN: &str = "http://127.0.0.1:49152";

    /// A third-party UPnP 1.0 renderer: URLBase with a path, relative, absolute-path and
    /// absolute URLs, an empty eventSubURL, a DLNA element, an icon list, a configId with a
    /// leading zero, and two services whose URLs cannot be followed.
    static RENDERER: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" xmlns:dlna="urn:schemas-dlna-org:device-1-0" configId="012">
  <specVersion><major>1</major><minor>0</minor></specVersion>
  <URLBase>http://192.168.1.20:49494/upnp/</URLBase>
  <device>
    <deviceType>urn:schemas-upnp-org:device:MediaRenderer:1</deviceType>
    <friendlyName>Living Room &amp; Kitchen</friendlyName>
    <manufacturer>Acme</manufacturer>
    <manufacturerURL>http://acme.example/</manufacturerURL>
    <modelName>Renderer 3000</modelName>
    <modelNumber>3</modelNumber>
    <UDN>uuid:5f9ec1b3-ed59-79bc-4530-745e3f5c4b20</UDN>
    <dlna:X_DLNADOC>DMR-1.50</dlna:X_DLNADOC>
    <iconList>
      <icon><mimetype>image/png</mimetype><width>48</width><height>48</height><depth>24</depth><url>icon.png</url></icon>
    </iconList>
    <serviceList>
      <service>
        <serviceType>urn:schemas-upnp-org:service:AVTransport:1</serviceType>
        <serviceId>urn:upnp-org:serviceId:AVTransport</serviceId>
        <SCPDURL>AVTransport/scpd.xml</SCPDURL>
        <controlURL>/ctl/AVTransport</controlURL>
        <eventSubURL>http://192.168.1.20:49494/evt/AVTransport</eventSubURL>
      </service>
      <service>
        <serviceType>urn:schemas-upnp-org:service:RenderingControl:1</serviceType>
        <serviceId>urn:upnp-org:serviceId:RenderingControl</serviceId>
        <SCPDURL>./rc/../RenderingControl.xml</SCPDURL>
        <controlURL>rc/control?instance=0</controlURL>
        <eventSubURL></eventSubURL>
      </service>
      <service>
        <serviceType>urn:schemas-upnp-org:service:ConnectionManager:1</serviceType>
        <serviceId>urn:upnp-org:serviceId:ConnectionManager</serviceId>
        <SCPDURL>https://192.168.1.20/cm.xml</SCPDURL>
        <controlURL>/ctl/cm</controlURL>
        <eventSubURL>/evt/cm</eventSubURL>
      </service>
      <service>
        <serviceType>urn:acme-com:service:Spy:1</serviceType>
        <serviceId>urn:acme-com:serviceId:Spy</serviceId>
        <SCPDURL>/spy.xml</SCPDURL>
        <controlURL>//evil.example/ctl</controlURL>
        <eventSubURL>/evt/spy</eventSubURL>
      </service>
    </serviceList>
    <presentationURL>/</presentationURL>
  </device>
</root>"#;

    /// GUPnP style with prefixes: no URLBase (so URLs resolve against LOCATION's directory),
    /// xenplug's vendor element under another prefix, a `device` in a foreign namespace
    /// (ignored), two levels of embedded devices, a byte order mark, comments and CDATA.
    static PREFIXED: &[u8] = b"\xEF\xBB\xBF<u:root xmlns:u=\"urn:schemas-upnp-org:device-1-0\" xmlns:x=\"urn:xenplug-org:schemas-1-0\">
<!-- a comment -->
<u:specVersion><u:major>1</u:major><u:minor>1</u:minor></u:specVersion>
<u:device>
 <u:deviceType>urn:xenplug-org:device:VirtualMachine:1</u:deviceType>
 <u:friendlyName><![CDATA[web<01>]]></u:friendlyName>
 <u:UDN>uuid:0b9d3c1e-5a4f-4e2b-9c61-2f1e0d9a8b7c</u:UDN>
 <x:vmUuid> 0B9D3C1E-5A4F-4E2B-9C61-2F1E0D9A8B7C </x:vmUuid>
 <device xmlns=\"urn:acme-com:x\"><deviceType>ignored</deviceType></device>
 <u:serviceList><u:service>
  <u:serviceType>urn:xenplug-org:service:Backup:1</u:serviceType>
  <u:serviceId>urn:xenplug-org:serviceId:Backup</u:serviceId>
  <u:SCPDURL>svc/Backup.xml</u:SCPDURL>
  <u:controlURL>../../control/svc/Backup</u:controlURL>
  <u:eventSubURL>../../../../event/svc/Backup</u:eventSubURL>
 </u:service></u:serviceList>
 <u:deviceList>
  <u:device>
   <u:deviceType>urn:xenplug-org:device:Application:1</u:deviceType>
   <u:friendlyName>shop</u:friendlyName>
   <u:UDN>uuid:shop</u:UDN>
   <u:deviceList><u:device>
    <u:deviceType>urn:xenplug-org:device:Queue:1</u:deviceType>
    <u:friendlyName>orders</u:friendlyName>
    <u:UDN>uuid:orders</u:UDN>
   </u:device></u:deviceList>
  </u:device>
 </u:deviceList>
</u:device>
</u:root>";

    const PREFIXED_LOCATION: &str = "http://10.1.2.3:5000/dev/web01/description.xml?v=2";

    fn host_view() -> HostView {
        HostView {
            uuid: Uuid::from_u128(0x1234_5678),
            info: HostInfo {
                uuid: None,
                name: "alpha & <beta>".into(),
                hypervisor_version: "4.17".into(),
                cpus: 4,
                memory_mib: 8192,
            },
            backend: "sim",
            domains: [(0xa1, "web"), (0xa2, "db \"main\"")]
                .iter()
                .map(|&(id, name)| Domain {
                    uuid: Uuid::from_u128(id),
                    name: name.into(),
                    state: RunState::Running,
                    memory_kib: 1 << 20,
                    vcpus: 1,
                })
                .collect(),
        }
    }

    fn render(device: &Device, config_id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        render_description(device, config_id, &mut out).unwrap();
        out
    }

    /// What parsing the rendered `device` must give, built from the model independently of
    /// the parser.
    fn expected(device: &Device) -> DescribedDevice {
        DescribedDevice {
            device_type: device.device_type.clone(),
            udn: format!("uuid:{}", device.udn),
            friendly_name: device.friendly_name.clone(),
            manufacturer: MANUFACTURER.to_string(),
            model_name: device.model_name.clone(),
            vm_uuid: device.vm_uuid.map(|vm| vm.to_string()),
            services: device
                .services
                .iter()
                .map(|service| DescribedService {
                    service_type: service.spec.service_type.clone(),
                    service_id: service.spec.service_id.clone(),
                    scpd_url: format!("{ORIGIN}{}", service.spec.scpd_url()),
                    control_url: format!("{ORIGIN}{}", service.control_url()),
                    event_url: format!("{ORIGIN}{}", service.event_url()),
                })
                .collect(),
            devices: device.devices.iter().map(expected).collect(),
        }
    }

    fn refused(bytes: &[u8], expected: &str) {
        match parse_description(bytes, LOCATION) {
            Ok(described) => panic!("accepted, wanted {expected:?}: {described:?}"),
            Err(error) => assert!(
                error.reason().contains(expected),
                "{:?} does not contain {expected:?}",
                error.reason()
            ),
        }
    }

    /// A minimal device element with `inner` added.
    fn device(udn: &str, inner: &str) -> String {
        format!("<device><deviceType>urn:t</deviceType><friendlyName>f</friendlyName><UDN>{udn}</UDN>{inner}</device>")
    }

    fn document(root_device: &str) -> Vec<u8> {
        format!(r#"<root xmlns="urn:schemas-upnp-org:device-1-0">{root_device}</root>"#)
            .into_bytes()
    }

    fn service(scpd: &str) -> String {
        format!("<service><serviceType>urn:s</serviceType><serviceId>urn:i</serviceId><SCPDURL>{scpd}</SCPDURL><controlURL>/c</controlURL><eventSubURL>/e</eventSubURL></service>")
    }

    #[test]
    fn udns_read_the_same_way_everywhere() {
        let uuid = uuid::Uuid::parse_str("5f0c7a2e-8d1b-4c3e-9a7f-0123456789ab").unwrap();
        for text in [
            "uuid:5f0c7a2e-8d1b-4c3e-9a7f-0123456789ab",
            "UUID:5F0C7A2E-8D1B-4C3E-9A7F-0123456789AB",
            " Uuid:5f0c7a2e-8d1b-4c3e-9a7f-0123456789ab\t",
        ] {
            assert_eq!(udn_uuid(text), Some(uuid), "{text:?}");
        }
        for text in [
            "",
            "uuid:",
            "5f0c7a2e-8d1b-4c3e-9a7f-0123456789ab",
            "uuid 5f0c7a2e-8d1b-4c3e-9a7f-0123456789ab",
            "uuid:5f0c7a2e-8d1b-4c3e-9a7f-0123456789",
            "urn:5f0c7a2e-8d1b-4c3e-9a7f-0123456789ab",
            "uu\u{e9}d:x",
        ] {
            assert_eq!(udn_uuid(text), None, "{text:?}");
        }
    }

    #[test]
    fn parses_our_own_hypervisor_description() {
        let tree = hypervisor_device(&host_view());
        let described = parse_description(&render(&tree, 42), LOCATION).unwrap();
        assert_eq!(described.config_id, Some(42));
        assert_eq!(described.url_base, None);
        assert!(described.warnings.is_empty(), "{:?}", described.warnings);
        assert_eq!(described.root, expected(&tree));
        // Spot checks that do not go through `expected`.
        let root = &described.root;
        assert_eq!(root.udn, "uuid:00000000-0000-0000-0000-000012345678");
        assert_eq!(root.friendly_name, "Xen hypervisor alpha & <beta>");
        assert_eq!(root.devices.len(), 2);
        assert_eq!(root.devices[1].friendly_name, "db \"main\"");
        assert_eq!(
            root.services[0].scpd_url,
            "http://127.0.0.1:49152/scpd/Hypervisor.xml"
        );
        assert_eq!(
            root.devices[0].services[0].control_url,
            "http://127.0.0.1:49152/control/domain/00000000-0000-0000-0000-0000000000a1"
        );
        assert_eq!(vm_uuid(root), None);
        assert_eq!(vm_uuid(&root.devices[0]), Some(Uuid::from_u128(0xa1)));
        assert_eq!(root.walk().len(), 3);
    }

    #[test]
    fn parses_our_own_nested_vm_description() {
        let spec = Arc::new(ServiceSpec::new(
            "Backup",
            "urn:xenplug-org:service:Backup:1",
            "urn:xenplug-org:serviceId:Backup",
        ));
        let leaf = |udn: u128, name: &str, devices: Vec<Device>| Device {
            device_type: "urn:xenplug-org:device:Application:1".into(),
            udn: Uuid::from_u128(udn),
            friendly_name: name.into(),
            model_name: String::new(),
            model_description: "d".into(),
            vm_uuid: None,
            services: vec![Service {
                spec: spec.clone(),
                key: format!("dev/{name}/Backup"),
            }],
            devices,
        };
        let tree = Device {
            device_type: crate::consts::URN_DEVICE_VIRTUAL_MACHINE.into(),
            udn: Uuid::from_u128(0xbeef),
            friendly_name: "vm".into(),
            model_name: "xenplug vm".into(),
            model_description: String::new(),
            vm_uuid: Some(Uuid::from_u128(0xbeef)),
            services: Vec::new(),
            devices: vec![
                leaf(
                    1,
                    "shop",
                    vec![leaf(2, "orders", vec![leaf(3, "q", vec![])])],
                ),
                leaf(4, "blog", vec![]),
            ],
        };
        let described = parse_description(&render(&tree, 0), LOCATION).unwrap();
        assert_eq!(described.config_id, Some(0));
        assert_eq!(described.root, expected(&tree));
        assert_eq!(described.root.model_name, "xenplug vm");
        assert_eq!(vm_uuid(&described.root), Some(Uuid::from_u128(0xbeef)));
        assert_eq!(described.root.walk().len(), 5);
    }

    #[test]
    fn parses_a_third_party_renderer_with_url_base() {
        let described =
            parse_description(RENDERER, "http://192.168.1.20:49494/description.xml").unwrap();
        assert_eq!(described.config_id, Some(12));
        assert_eq!(
            described.url_base.as_deref(),
            Some("http://192.168.1.20:49494/upnp/")
        );
        let root = &described.root;
        assert_eq!(
            root.device_type,
            "urn:schemas-upnp-org:device:MediaRenderer:1"
        );
        assert_eq!(root.udn, "uuid:5f9ec1b3-ed59-79bc-4530-745e3f5c4b20");
        assert_eq!(root.friendly_name, "Living Room & Kitchen");
        assert_eq!(root.manufacturer, "Acme");
        assert_eq!(root.model_name, "Renderer 3000");
        assert_eq!(root.vm_uuid, None);
        assert!(root.devices.is_empty());
        assert_eq!(
            root.services,
            vec![
                DescribedService {
                    service_type: "urn:schemas-upnp-org:service:AVTransport:1".into(),
                    service_id: "urn:upnp-org:serviceId:AVTransport".into(),
                    scpd_url: "http://192.168.1.20:49494/upnp/AVTransport/scpd.xml".into(),
                    control_url: "http://192.168.1.20:49494/ctl/AVTransport".into(),
                    event_url: "http://192.168.1.20:49494/evt/AVTransport".into(),
                },
                DescribedService {
                    service_type: "urn:schemas-upnp-org:service:RenderingControl:1".into(),
                    service_id: "urn:upnp-org:serviceId:RenderingControl".into(),
                    scpd_url: "http://192.168.1.20:49494/upnp/RenderingControl.xml".into(),
                    control_url: "http://192.168.1.20:49494/upnp/rc/control?instance=0".into(),
                    event_url: String::new(),
                },
            ]
        );
        assert_eq!(described.warnings.len(), 2, "{:?}", described.warnings);
        assert!(described.warnings[0].contains("service 3: SCPDURL \"https://192.168.1.20/cm.xml\": not an http URL; the service is left out"), "{}", described.warnings[0]);
        assert!(
            described.warnings[1].contains(
                "service 4: controlURL \"//evil.example/ctl\": a reference to another host"
            ),
            "{}",
            described.warnings[1]
        );
        assert!(described.warnings[1].starts_with("device \"uuid:5f9ec1b3"));
    }

    #[test]
    fn parses_prefixed_elements_against_the_location() {
        let described = parse_description(PREFIXED, PREFIXED_LOCATION).unwrap();
        assert!(described.warnings.is_empty(), "{:?}", described.warnings);
        assert_eq!(described.config_id, None);
        let root = &described.root;
        assert_eq!(root.friendly_name, "web<01>");
        assert_eq!(root.manufacturer, "");
        assert_eq!(
            root.vm_uuid.as_deref(),
            Some("0B9D3C1E-5A4F-4E2B-9C61-2F1E0D9A8B7C")
        );
        assert_eq!(
            vm_uuid(root),
            Some(Uuid::from_u128(0x0b9d3c1e_5a4f_4e2b_9c61_2f1e0d9a8b7c))
        );
        let service = &root.services[0];
        assert_eq!(
            service.scpd_url,
            "http://10.1.2.3:5000/dev/web01/svc/Backup.xml"
        );
        assert_eq!(
            service.control_url,
            "http://10.1.2.3:5000/control/svc/Backup"
        );
        assert_eq!(service.event_url, "http://10.1.2.3:5000/event/svc/Backup");
        let udns: Vec<&str> = root.walk().iter().map(|d| d.udn.as_str()).collect();
        assert_eq!(
            udns,
            [
                "uuid:0b9d3c1e-5a4f-4e2b-9c61-2f1e0d9a8b7c",
                "uuid:shop",
                "uuid:orders"
            ]
        );
        assert!(root.devices[0].services.is_empty());
    }

    #[test]
    fn resolves_urls() {
        let cases: [(&str, &str, core::result::Result<&str, &str>); 22] = [
            ("http://h:1/a/b.xml", "c.xml", Ok("http://h:1/a/c.xml")),
            ("http://h:1/a/b.xml", "/c.xml", Ok("http://h:1/c.xml")),
            ("http://h:1/a/b/", "c/d", Ok("http://h:1/a/b/c/d")),
            ("http://h:1", "c", Ok("http://h:1/c")),
            ("http://h:1?q", "c", Ok("http://h:1/c")),
            ("HTTP://H:1/x?y#z", "c?d#e", Ok("HTTP://H:1/c?d#e")),
            ("http://h/a/b/c", "../../d", Ok("http://h/d")),
            ("http://h/a/b/c", "../../../../d", Ok("http://h/d")),
            ("http://h/a/b/c", "./", Ok("http://h/a/b/")),
            ("http://h/a/b/c", "..", Ok("http://h/a/")),
            ("http://h/a/b/c", "/x/./y/../z", Ok("http://h/x/z")),
            ("http://h/a/b/c", "?q", Ok("http://h/a/b/c?q")),
            ("http://h/a", "", Ok("")),
            ("http://h/a", "http://other:9/x", Ok("http://other:9/x")),
            ("http://h/a", "Http://other", Ok("Http://other")),
            ("http://h/a", "https://h/x", Err("not an http URL")),
            ("http://h/a", "ftp:x", Err("not an http URL")),
            ("http://h/a", "//h/x", Err("another host")),
            ("http://h/a", "http:///x", Err("without a host")),
            ("http://h/a", "http://", Err("without a host")),
            ("http://h/a", "a b", Err("a space")),
            ("http://h/a", "d\u{e9}j\u{e0}", Err("non-ASCII")),
        ];
        for (base, reference, expected) in cases {
            let base_url = BaseUrl::parse(base).unwrap();
            let got = base_url.resolve(reference);
            match expected {
                Ok(url) => assert_eq!(got.as_deref(), Ok(url), "{base} + {reference}"),
                Err(part) => assert!(
                    got.as_ref().is_err_and(|reason| reason.contains(part)),
                    "{base} + {reference}: {got:?}"
                ),
            }
        }
        for bad in [
            "",
            "/x",
            "https://h/",
            "http://",
            "http:///x",
            "ftp://h",
            "http://h /",
        ] {
            assert!(BaseUrl::parse(bad).is_none(), "{bad}");
        }
        // A scheme-like first segment is a scheme (RFC 3986 section 4.2), not a path.
        assert!(has_scheme("a:b"));
        assert!(has_scheme("x-1.y+z:q"));
        assert!(!has_scheme("1a:b"));
        assert!(!has_scheme("a/b:c"));
        assert!(!has_scheme("/a:b"));
    }

    #[test]
    fn tolerates_a_bad_url_base_and_config_id() {
        let bytes = format!(
            r#"<root xmlns="urn:schemas-upnp-org:device-1-0" configId="2147483648"><URLBase>ftp://x/</URLBase>{}</root>"#,
            device(
                "uuid:a",
                &format!("<serviceList>{}</serviceList>", service("s.xml"))
            )
        );
        let described = parse_description(bytes.as_bytes(), LOCATION).unwrap();
        assert_eq!(described.config_id, None);
        assert_eq!(described.url_base.as_deref(), Some("ftp://x/"));
        assert_eq!(
            described.root.services[0].scpd_url,
            format!("{ORIGIN}/s.xml")
        );
        assert_eq!(described.warnings.len(), 2);
        assert!(described.warnings[0].contains("configId \"2147483648\""));
        assert!(described.warnings[1].contains("URLBase \"ftp://x/\""));
        for (text, value) in [
            ("2147483647", Some(0x7FFF_FFFF)),
            ("0", Some(0)),
            ("000", Some(0)),
            (" 7 ", Some(7)),
            ("", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("99999999999999999999", None),
        ] {
            assert_eq!(parse_config_id(text), value, "{text:?}");
        }
        // An empty URLBase is as good as none.
        let bytes = format!(
            r#"<root xmlns="urn:schemas-upnp-org:device-1-0"><URLBase> </URLBase>{}</root>"#,
            device("uuid:a", "")
        );
        let described = parse_description(bytes.as_bytes(), LOCATION).unwrap();
        assert_eq!(described.url_base, None);
        assert!(described.warnings.is_empty());
    }

    #[test]
    fn refuses_what_a_tracker_cannot_file() {
        refused(
            br#"<root><device/></root>"#,
            "root element is not root in namespace",
        );
        refused(
            br#"<root xmlns="urn:schemas-upnp-org:service-1-0"/>"#,
            "root element is not root",
        );
        refused(
            br#"<root xmlns="urn:schemas-upnp-org:device-1-0"/>"#,
            "the root device is missing",
        );
        refused(
            &document(&format!("{}{}", device("uuid:a", ""), device("uuid:b", ""))),
            "device is given more than once",
        );
        refused(
            &document("<device><deviceType>t</deviceType><friendlyName>f</friendlyName></device>"),
            "root device: UDN is missing",
        );
        refused(
            &document("<device><deviceType>t</deviceType><UDN>uuid:a</UDN></device>"),
            "device \"uuid:a\": friendlyName is missing",
        );
        refused(
            &document("<device><friendlyName>f</friendlyName><UDN>uuid:a</UDN></device>"),
            "deviceType is missing",
        );
        refused(
            &document("<device><deviceType> </deviceType><friendlyName>f</friendlyName><UDN>uuid:a</UDN></device>"),
            "deviceType is empty",
        );
        refused(
            &document(&device("uuid:a", "<deviceType>u</deviceType>")),
            "deviceType is given more than once",
        );
        refused(
            &document(&device("uuid:a", "<manufacturer><b/></manufacturer>")),
            "manufacturer must hold text, not elements",
        );
        refused(
            &document(&device("uuid:a", "<modelName>a&#9;b</modelName>")),
            "modelName holds a control character",
        );
        refused(
            &document(&device(
                "uuid:a",
                "<x:vmUuid xmlns:x=\"urn:xenplug-org:schemas-1-0\">1</x:vmUuid><x:vmUuid xmlns:x=\"urn:xenplug-org:schemas-1-0\">2</x:vmUuid>",
            )),
            "vmUuid is given more than once",
        );
        refused(
            &document(&device(
                "uuid:a",
                &format!("<deviceList>{}</deviceList>", device("uuid:a", "")),
            )),
            "UDN \"uuid:a\" is given to two devices",
        );
        refused(
            &document(&device(
                "uuid:a",
                &format!(
                    "<deviceList>{}</deviceList>",
                    device("uuid:b", "<friendlyName>x</friendlyName>")
                ),
            )),
            "device \"uuid:a\": device \"uuid:b\": friendlyName is given more than once",
        );
        refused(
            &document(&device(
                "uuid:a",
                "<serviceList><service><serviceId>1</serviceId><serviceId>2</serviceId></service></serviceList>",
            )),
            "device \"uuid:a\": service 1: serviceId is given more than once",
        );
        refused(
            &document(&device(
                "uuid:a",
                "<deviceList><device><UDN></UDN></device></deviceList>",
            )),
            "device \"uuid:a\": embedded device 1: UDN is empty",
        );
        match parse_description(&document(&device("uuid:a", "")), "https://h/d.xml") {
            Err(error) => assert!(error.reason().contains("not an absolute http URL")),
            Ok(described) => panic!("{described:?}"),
        }
        assert!(parse_description(&document(&device("uuid:a", "")), "/d.xml").is_err());
    }

    #[test]
    fn enforces_text_and_count_bounds() {
        let long = "n".repeat(DESC_MAX_TEXT);
        let fits = device("uuid:a", &format!("<modelName>  {long}\n</modelName>"));
        assert_eq!(
            parse_description(&document(&fits), LOCATION)
                .unwrap()
                .root
                .model_name,
            long
        );
        refused(
            &document(&device(
                "uuid:a",
                &format!("<modelName>{long}n</modelName>"),
            )),
            "modelName is longer than 256 bytes",
        );
        refused(
            &document(&device(
                "uuid:a",
                &format!(
                    "<serviceList>{}</serviceList>",
                    service(&format!("/{long}"))
                ),
            )),
            "service 1: SCPDURL is longer than 256 bytes",
        );

        let services = |count: usize| {
            let list: String = (0..count).map(|i| service(&format!("/s{i}"))).collect();
            document(&device(
                "uuid:a",
                &format!("<serviceList>{list}</serviceList>"),
            ))
        };
        let described = parse_description(&services(DESC_MAX_SERVICES), LOCATION).unwrap();
        assert_eq!(described.root.services.len(), DESC_MAX_SERVICES);
        refused(&services(DESC_MAX_SERVICES + 1), "more than 32 services");

        let flat = |count: usize| {
            let list: String = (0..count)
                .map(|i| device(&format!("uuid:e{i}"), ""))
                .collect();
            document(&device(
                "uuid:root",
                &format!("<deviceList>{list}</deviceList>"),
            ))
        };
        let most = DESCRIPTION_LIMITS.max_embedded_devices;
        let described = parse_description(&flat(most), LOCATION).unwrap();
        assert_eq!(described.root.devices.len(), most);
        refused(
            &flat(most + 1),
            &format!("more than {most} embedded devices"),
        );
        // A smaller size limit admits fewer.
        let small = DescriptionLimits::for_size(64 * 1024);
        assert_eq!(small.max_embedded_devices, 128);
        assert!(parse_description_within(&flat(128), LOCATION, &small).is_ok());
        match parse_description_within(&flat(129), LOCATION, &small) {
            Err(error) => assert!(
                error.reason().contains("more than 128 embedded devices"),
                "{error}"
            ),
            Ok(described) => panic!("{described:?}"),
        }

        let nested = |levels: usize| {
            let mut inner = device(&format!("uuid:l{levels}"), "");
            for level in (0..levels).rev() {
                inner = device(
                    &format!("uuid:l{level}"),
                    &format!("<deviceList>{inner}</deviceList>"),
                );
            }
            document(&inner)
        };
        let described = parse_description(&nested(DESC_MAX_DEVICE_NESTING), LOCATION).unwrap();
        assert_eq!(described.root.walk().len(), DESC_MAX_DEVICE_NESTING + 1);
        refused(
            &nested(DESC_MAX_DEVICE_NESTING + 1),
            "embedded devices nested more than 4 levels deep",
        );
    }

    #[test]
    fn refuses_hostile_xml() {
        refused(
            b"<?xml version=\"1.0\"?><!DOCTYPE root [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><root xmlns=\"urn:schemas-upnp-org:device-1-0\">&b;</root>",
            "document type declaration",
        );
        let mut deep = br#"<root xmlns="urn:schemas-upnp-org:device-1-0">"#.to_vec();
        for _ in 0..DESC_MAX_DEPTH {
            deep.extend_from_slice(b"<x>");
        }
        for _ in 0..DESC_MAX_DEPTH {
            deep.extend_from_slice(b"</x>");
        }
        deep.extend_from_slice(b"</root>");
        refused(&deep, "nested deeper than 32");
        let mut huge = document(&device("uuid:a", ""));
        huge.splice(6..6, vec![b' '; DESC_MAX_BYTES]);
        refused(&huge, &format!("larger than {DESC_MAX_BYTES} bytes"));
        // Two nodes in five bytes: over the node limit well within the size limit.
        let nodes = DESCRIPTION_LIMITS.max_nodes;
        let wide: String = (0..nodes / 2 + 8).map(|_| "<a/>x").collect();
        assert!(wide.len() < DESC_MAX_BYTES);
        refused(&document(&wide), &format!("more than {nodes} XML nodes"));
        // Tens of thousands of embedded devices: refused by size before anything is walked, and by
        // count when written as compactly as XML allows.
        let many: String = (0..60_000)
            .map(|i| device(&format!("uuid:{i}"), ""))
            .collect();
        refused(
            &document(&device(
                "uuid:r",
                &format!("<deviceList>{many}</deviceList>"),
            )),
            "larger than",
        );
        let compact: String = (0..10_000).map(|_| "<device/>").collect();
        assert!(compact.len() < DESC_MAX_BYTES);
        refused(
            &document(&device(
                "uuid:r",
                &format!("<deviceList>{compact}</deviceList>"),
            )),
            &format!(
                "more than {} embedded devices",
                DESCRIPTION_LIMITS.max_embedded_devices
            ),
        );
        refused(b"\xff\xfe<root/>", "not well-formed XML");
        refused(b"", "not well-formed XML");
        refused(
            br#"<root xmlns="urn:schemas-upnp-org:device-1-0"><device>"#,
            "ends before the document does",
        );
    }

    #[test]
    fn every_truncated_prefix_is_refused() {
        let own = render(&hypervisor_device(&host_view()), 3);
        let own_end = own.len() - b"\n".len();
        for (fixture, end, base) in [
            (&own[..], own_end, LOCATION),
            (RENDERER, RENDERER.len(), LOCATION),
            (PREFIXED, PREFIXED.len(), PREFIXED_LOCATION),
        ] {
            assert!(parse_description(&fixture[..end], base).is_ok());
            for cut in 0..end {
                assert!(
                    parse_description(&fixture[..cut], base).is_err(),
                    "prefix {cut}"
                );
            }
        }
    }

    /// The description read as one tree, as [`parse_description_within`] reads whatever it
    /// cannot read in pieces.
    fn in_one_tree(bytes: &[u8], base: &str, limits: &DescriptionLimits) -> ParseResult<Described> {
        let bytes = xml::without_byte_order_mark(bytes);
        let document = xml::parse_bounded(bytes, limits.xml())
            .map_err(|error| DescriptionError::new(limits.xml().explain(error)))?;
        read_document(
            &document,
            BaseUrl::parse(base).unwrap(),
            limits,
            |_, _, _| Ok(()),
        )
    }

    /// Whether [`read_in_pieces`] took `bytes`, after checking that the answer is what one
    /// tree gives, refusals included.
    fn read_in_pieces_as_in_one_tree(bytes: &[u8], base: &str, limits: &DescriptionLimits) -> bool {
        let (read, whole) = (
            parse_description_within(bytes, base, limits),
            in_one_tree(bytes, base, limits),
        );
        // Compared whole, shown short: some of these documents are a megabyte.
        if read != whole {
            let shown = |read: &ParseResult<Described>| xml::shown(&format!("{read:?}"), 300);
            panic!(
                "{} reads as {}, and as {} in one tree",
                xml::shown(&String::from_utf8_lossy(bytes), 300),
                shown(&read),
                shown(&whole)
            );
        }
        let bytes = xml::without_byte_order_mark(bytes);
        core::str::from_utf8(bytes)
            .ok()
            .and_then(|text| read_in_pieces(text, BaseUrl::parse(base).unwrap(), limits))
            .is_some()
    }

    #[test]
    fn embedded_devices_read_one_at_a_time_as_in_one_tree() {
        let limits = DESCRIPTION_LIMITS;
        let own = render(&hypervisor_device(&host_view()), 3);
        assert!(read_in_pieces_as_in_one_tree(&own, LOCATION, &limits));
        assert!(read_in_pieces_as_in_one_tree(
            PREFIXED,
            PREFIXED_LOCATION,
            &limits
        ));
        // No deviceList: read in one tree.
        assert!(!read_in_pieces_as_in_one_tree(RENDERER, LOCATION, &limits));
        let root = |list: &str| {
            document(&device(
                "uuid:root",
                &format!(
                    "<serviceList>{}</serviceList>{list}",
                    service("ftp://root/s")
                ),
            ))
        };
        let nested = device(
            "uuid:e2",
            &format!("<deviceList>{}</deviceList>", device("uuid:e3", "")),
        );
        let with_bad_url = device(
            "uuid:e4",
            &format!("<serviceList>{}</serviceList>", service("ftp://e4/s")),
        );
        let plain = format!(
            "<deviceList>\n {} {nested}{with_bad_url}\n</deviceList>",
            device("uuid:e1", "")
        );
        // Warnings in document order: the root device's service, then e4's.
        let described = parse_description(&root(&plain), LOCATION).unwrap();
        assert_eq!(described.warnings.len(), 2);
        assert!(
            described.warnings[1].contains("uuid:e4"),
            "{:?}",
            described.warnings
        );
        assert_eq!(described.root.walk().len(), 5);
        for (list, in_pieces) in [
            (plain.clone(), true),
            // Elements of other namespaces in the list are skipped.
            (
                format!("<deviceList><device xmlns=\"urn:other\"/>{nested}</deviceList>"),
                true,
            ),
            // A UDN given twice, in two pieces or in one.
            (
                format!(
                    "<deviceList>{}{}</deviceList>",
                    device("uuid:e1", ""),
                    device("uuid:e1", "")
                ),
                false,
            ),
            (
                format!("<deviceList>{}</deviceList>", device("uuid:root", "")),
                false,
            ),
            // A piece that is not well-formed, or not a device.
            (
                "<deviceList><device><UDN>uuid:x</device></deviceList>".to_string(),
                false,
            ),
            ("<deviceList><device/></deviceList>".to_string(), false),
            // Not plain: a comment or text between the devices.
            (
                format!("<deviceList>{nested}<!-- c -->{with_bad_url}</deviceList>"),
                false,
            ),
            (
                format!("<deviceList>{nested}x{with_bad_url}</deviceList>"),
                false,
            ),
            // The list given twice, or the first one in another namespace.
            (format!("{plain}{plain}"), false),
            (
                format!("<deviceList xmlns=\"urn:other\">{nested}</deviceList>{plain}"),
                false,
            ),
        ] {
            assert_eq!(
                read_in_pieces_as_in_one_tree(&root(&list), LOCATION, &limits),
                in_pieces,
                "{list}"
            );
        }
        // The first `device` under the root in another namespace: the real one comes second.
        let foreign = format!(
            r#"<root xmlns="urn:schemas-upnp-org:device-1-0"><device xmlns="urn:other">{plain}</device>{}</root>"#,
            device("uuid:real", &plain)
        );
        assert!(!read_in_pieces_as_in_one_tree(
            foreign.as_bytes(),
            LOCATION,
            &limits
        ));
        assert_eq!(
            parse_description(foreign.as_bytes(), LOCATION)
                .unwrap()
                .root
                .udn,
            "uuid:real"
        );

        // More distinct namespaces than roxmltree holds in one tree, a few in each piece.
        let crowded: String = (0..1100)
            .map(|n| {
                let names: String = (0..60).map(|i| format!(" xmlns:p{i}=\"u{n}\"")).collect();
                format!("<device{names}><deviceType>t</deviceType><friendlyName>f</friendlyName><UDN>uuid:{n}</UDN></device>")
            })
            .collect();
        let crowded = root(&format!("<deviceList>{crowded}</deviceList>"));
        assert!(crowded.len() < DESC_MAX_BYTES);
        assert!(!read_in_pieces_as_in_one_tree(&crowded, LOCATION, &limits));
        assert!(parse_description(&crowded, LOCATION).is_err());

        // At the node and embedded-device limits exactly, one below them, and with fewer
        // devices admitted than the root device lists.
        let bytes = root(&plain);
        let nodes = roxmltree::Document::parse(core::str::from_utf8(&bytes).unwrap())
            .unwrap()
            .descendants()
            .count() as u32;
        for (max_nodes, max_embedded_devices, in_pieces) in [
            (nodes, 4, true),
            (nodes - 1, 4, false),
            (nodes, 3, false),
            (nodes, 2, false),
        ] {
            let limits = DescriptionLimits {
                max_nodes,
                max_embedded_devices,
                ..limits
            };
            assert_eq!(
                read_in_pieces_as_in_one_tree(&bytes, LOCATION, &limits),
                in_pieces
            );
        }
    }

    #[test]
    fn vm_uuid_reads_the_vendor_element() {
        let mut device = DescribedDevice {
            device_type: "t".into(),
            udn: "uuid:a".into(),
            friendly_name: "f".into(),
            manufacturer: String::new(),
            model_name: String::new(),
            vm_uuid: None,
            services: Vec::new(),
            devices: Vec::new(),
        };
        assert_eq!(vm_uuid(&device), None);
        device.vm_uuid = Some("00000000-0000-0000-0000-0000000000a1".into());
        assert_eq!(vm_uuid(&device), Some(Uuid::from_u128(0xa1)));
        device.vm_uuid = Some("not-a-uuid".into());
        assert_eq!(vm_uuid(&device), None);
        // An empty element reads as no element.
        let bytes = document(&device_with_vm(""));
        assert_eq!(
            parse_description(&bytes, LOCATION).unwrap().root.vm_uuid,
            None
        );
    }

    fn device_with_vm(text: &str) -> String {
        device(
            "uuid:a",
            &format!("<xenplug:vmUuid xmlns:xenplug=\"urn:xenplug-org:schemas-1-0\">{text}</xenplug:vmUuid>"),
        )
    }
}
