//! Wire layer: UPnP control over SOAP 1.1 (UDA 1.1 section 3): parse an action call, check it
//! against an action table, write a response or a fault. No I/O, no clock, and never a panic
//! on what a peer sends.
//!
//! Every failure to understand a call is a [`UpnpError`], answered with [`write_fault`] and
//! HTTP 500 (UDA 1.1 section 3.2.2; the status line is the caller's job). That includes
//! malformed or hostile XML: UDA 1.1 defines no other answer to a control request whose body
//! cannot be read, and SOAP 1.1 section 6.2 asks for a fault in a 500 response, so such a
//! body gets 402 Invalid Args, the code UDA gives for arguments that cannot be used. A body
//! larger than [`consts::SOAP_MAX_ENVELOPE`] is normally refused earlier by the HTTP layer
//! (413); if it reaches [`parse_call`] it is 402 as well.

use std::borrow::Cow;
use std::fmt;

use crate::consts;
use crate::wire::xml;

/// Depth of the SOAP envelope, at most (hostile nesting is refused before it costs anything).
const SOAP_MAX_DEPTH: usize = 16;
/// XML nodes (elements, text runs, comments) in one SOAP envelope, at most: an envelope with
/// [`SOAP_MAX_ARGUMENTS`] arguments, each on its own indented line, needs about 110.
const SOAP_MAX_NODES: u32 = 512;
/// Suffix that turns an action name into the element of its response (UDA 1.1 section 3.2.2:
/// `<u:actionNameResponse>`).
const SOAP_RESPONSE_SUFFIX: &str = "Response";
/// The XML declaration opening every SOAP body we write.
const SOAP_XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

/// 401 Invalid Action: no action by that name at this service (also: the SOAPACTION header
/// and the body disagree).
///
/// The UPnP error codes of UDA 1.1 section 3.2.2:
///
/// | code    | errorDescription                | meaning                                                    |
/// |---------|---------------------------------|------------------------------------------------------------|
/// | 401     | Invalid Action                  | no action by that name at this service                     |
/// | 402     | Invalid Args                    | in-args missing, extra, out of order or of the wrong type |
/// | 501     | Action Failed                   | the current state of the service prevents the action      |
/// | 600     | Argument Value Invalid          | an argument value is invalid                               |
/// | 601     | Argument Value Out of Range     | a value is outside its allowed range or list               |
/// | 602     | Optional Action Not Implemented | the action is optional and not implemented                 |
/// | 603     | Out of Memory                   | not enough memory to complete the action                   |
/// | 604     | Human Intervention Required     | the device needs a person to act before it can continue    |
/// | 605     | String Argument Too Long        | a string argument is too long for the device               |
/// | 606     | Action not authorized           | the action needs authorization and the caller lacks it     |
/// | 700-799 | (action-specific)               | defined by the service's standard                          |
/// | 800-899 | (vendor-specific)               | defined by the vendor, here xenplug                        |
pub const INVALID_ACTION: u16 = 401;
/// 402 Invalid Args; see [`INVALID_ACTION`] for the table.
pub const INVALID_ARGS: u16 = 402;
/// 501 Action Failed; see [`INVALID_ACTION`] for the table.
pub const ACTION_FAILED: u16 = 501;
/// 600 Argument Value Invalid; see [`INVALID_ACTION`] for the table.
pub const ARGUMENT_VALUE_INVALID: u16 = 600;
/// 601 Argument Value Out of Range; see [`INVALID_ACTION`] for the table.
pub const ARGUMENT_VALUE_OUT_OF_RANGE: u16 = 601;
/// 602 Optional Action Not Implemented; see [`INVALID_ACTION`] for the table.
pub const OPTIONAL_ACTION_NOT_IMPLEMENTED: u16 = 602;
/// 603 Out of Memory; see [`INVALID_ACTION`] for the table.
pub const OUT_OF_MEMORY: u16 = 603;
/// 604 Human Intervention Required; see [`INVALID_ACTION`] for the table.
pub const HUMAN_INTERVENTION_REQUIRED: u16 = 604;
/// 605 String Argument Too Long; see [`INVALID_ACTION`] for the table.
pub const STRING_ARGUMENT_TOO_LONG: u16 = 605;
/// 606 Action not authorized; see [`INVALID_ACTION`] for the table. UDA 1.1 lists it with the
/// codes DeviceSecurity uses; xenplug answers it to a caller outside a hypervisor's
/// `--allow-control` list.
pub const ACTION_NOT_AUTHORIZED: u16 = 606;
/// First action-specific code (700-799, defined by a service standard).
pub const ACTION_SPECIFIC_FIRST: u16 = 700;
/// Last action-specific code.
pub const ACTION_SPECIFIC_LAST: u16 = 799;
/// First vendor-specific code (800-899, defined by xenplug).
pub const VENDOR_FIRST: u16 = 800;
/// Last vendor-specific code.
pub const VENDOR_LAST: u16 = 899;

/// The errorDescription UDA 1.1 section 3.2.2 gives a standard code, or `None` for codes it
/// leaves to services and vendors.
pub fn standard_description(code: u16) -> Option<&'static str> {
    Some(match code {
        INVALID_ACTION => "Invalid Action",
        INVALID_ARGS => "Invalid Args",
        ACTION_FAILED => "Action Failed",
        ARGUMENT_VALUE_INVALID => "Argument Value Invalid",
        ARGUMENT_VALUE_OUT_OF_RANGE => "Argument Value Out of Range",
        OPTIONAL_ACTION_NOT_IMPLEMENTED => "Optional Action Not Implemented",
        OUT_OF_MEMORY => "Out of Memory",
        HUMAN_INTERVENTION_REQUIRED => "Human Intervention Required",
        STRING_ARGUMENT_TOO_LONG => "String Argument Too Long",
        ACTION_NOT_AUTHORIZED => "Action not authorized",
        _ => return None,
    })
}

/// Longest errorDescription written or read, in bytes. UDA 1.1 section 3.2.2 recommends an
/// errorDescription under 256 characters; a description that quotes what a peer sent (an
/// argument, a handler's error line, a backend's message) would otherwise be as long as that
/// input, in the fault and in every log line that repeats it.
pub const DESCRIPTION_MAX_BYTES: usize = 256;
/// What ends a text [`capped`] cut short.
const ELLIPSIS: &str = "...";

/// `text` if it has at most [`DESCRIPTION_MAX_BYTES`] bytes, else its longest prefix that ends
/// on a char boundary and leaves room for `...`, followed by `...` (so at most
/// [`DESCRIPTION_MAX_BYTES`] bytes in all). The one bound of errorDescriptions
/// ([`UpnpError::new`] applies it) and of log lines that quote peer input. Never panics.
pub fn capped(text: &str) -> Cow<'_, str> {
    if text.len() <= DESCRIPTION_MAX_BYTES {
        return Cow::Borrowed(text);
    }
    let mut end = DESCRIPTION_MAX_BYTES - ELLIPSIS.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + ELLIPSIS.len());
    cut.push_str(text.get(..end).unwrap_or_default());
    cut.push_str(ELLIPSIS);
    Cow::Owned(cut)
}

/// A UPnP error: the `errorCode` and `errorDescription` of a SOAP fault's `UPnPError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpnpError {
    /// errorCode (see [`INVALID_ACTION`] for the table).
    pub code: u16,
    /// errorDescription: short and human-readable, at most [`DESCRIPTION_MAX_BYTES`] bytes.
    pub description: Cow<'static, str>,
}

impl UpnpError {
    /// An error with its own description, [`capped`] to [`DESCRIPTION_MAX_BYTES`] bytes.
    pub fn new(code: u16, description: impl Into<Cow<'static, str>>) -> Self {
        let description = description.into();
        let description = match capped(&description) {
            Cow::Borrowed(_) => description,
            Cow::Owned(cut) => Cow::Owned(cut),
        };
        UpnpError { code, description }
    }

    /// An error with the standard description of `code` ("Error" for codes without one).
    pub fn from_code(code: u16) -> Self {
        UpnpError::new(code, standard_description(code).unwrap_or("Error"))
    }

    /// 401 Invalid Action.
    pub fn invalid_action() -> Self {
        UpnpError::from_code(INVALID_ACTION)
    }

    /// 402 Invalid Args.
    pub fn invalid_args() -> Self {
        UpnpError::from_code(INVALID_ARGS)
    }

    /// 501 Action Failed, with what failed.
    pub fn action_failed(description: impl Into<Cow<'static, str>>) -> Self {
        UpnpError::new(ACTION_FAILED, description)
    }
}

impl fmt::Display for UpnpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UPnP error {}: {}", self.code, self.description)
    }
}

impl std::error::Error for UpnpError {}

/// Splits a SOAPACTION header value, `"<service type>#<action>"`, into service type and
/// action name. UDA 1.1 section 3.2.1 shows the value in double quotes; some control points
/// leave them out, so both forms are accepted (but not a lone quote). Anything else is 401
/// Invalid Action.
pub fn parse_soap_action(header: &str) -> Result<(&str, &str), UpnpError> {
    let value = header.trim();
    let value = match (value.strip_prefix('"'), value.ends_with('"')) {
        (Some(inner), true) => inner
            .strip_suffix('"')
            .ok_or_else(UpnpError::invalid_action)?,
        (None, false) => value,
        _ => return Err(UpnpError::invalid_action()),
    };
    let (service_type, action) = value
        .split_once('#')
        .ok_or_else(UpnpError::invalid_action)?;
    let plain = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|byte| byte.is_ascii_graphic() && byte != b'#' && byte != b'"')
    };
    if plain(service_type) && plain(action) {
        Ok((service_type, action))
    } else {
        Err(UpnpError::invalid_action())
    }
}

/// A parsed action call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionCall {
    /// Service type: the namespace URI of the action element.
    pub service_type: String,
    /// Action name: the local name of the action element.
    pub action: String,
    /// In-arguments in document order: local element name and text content (entities and
    /// CDATA already decoded).
    pub arguments: Vec<(String, String)>,
}

impl ActionCall {
    /// The value of the first argument called `name`.
    pub fn argument(&self, name: &str) -> Option<&str> {
        self.arguments
            .iter()
            .find(|(argument, _)| argument == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Limits a SOAP envelope is parsed under.
const ENVELOPE_LIMITS: xml::Limits = xml::Limits {
    max_bytes: consts::SOAP_MAX_ENVELOPE,
    max_depth: SOAP_MAX_DEPTH,
    max_nodes: SOAP_MAX_NODES,
};

/// Parses an action request body (UDA 1.1 section 3.2.1).
///
/// Envelope and Body are matched by namespace URI, whatever their prefixes (UDA 1.1: "XML
/// namespace prefixes do not have to be the specific examples shown"); a SOAP Header before
/// the Body is skipped. The action element is the first element child of Body, its namespace
/// URI is the service type. When `soap_action` (the SOAPACTION header) is given it must name
/// the same service type and action, or the call is 401: a proxy or firewall deciding on the
/// header must not be fooled by a body doing something else.
///
/// Errors: 402 for a body that is not XML, is too large, too deep, has a DTD, is not a SOAP
/// 1.1 envelope or has no Body, and for an argument that contains elements or more than
/// [`consts::SOAP_MAX_ARGUMENTS`] arguments; 401 for a Body without action element, an action
/// element without namespace, or a SOAPACTION that is malformed or disagrees with the body.
pub fn parse_call(body: &[u8], soap_action: Option<&str>) -> Result<ActionCall, UpnpError> {
    let document =
        xml::parse_bounded(body, ENVELOPE_LIMITS).map_err(|_| UpnpError::invalid_args())?;
    let envelope = document.root_element();
    if !is_soap(envelope, "Envelope") {
        return Err(UpnpError::invalid_args());
    }
    let soap_body = envelope
        .children()
        .find(|child| is_soap(*child, "Body"))
        .ok_or_else(UpnpError::invalid_args)?;
    let action = soap_body
        .first_element_child()
        .ok_or_else(UpnpError::invalid_action)?;
    // `xmlns=""` undeclares the default namespace: roxmltree reports that as Some("").
    let service_type = action
        .tag_name()
        .namespace()
        .filter(|namespace| !namespace.is_empty())
        .ok_or_else(UpnpError::invalid_action)?;
    let action_name = action.tag_name().name();
    if let Some(header) = soap_action {
        let (header_service, header_action) = parse_soap_action(header)?;
        if header_service != service_type || header_action != action_name {
            return Err(UpnpError::invalid_action());
        }
    }
    let mut arguments = Vec::new();
    for argument in action.children().filter(|child| child.is_element()) {
        if arguments.len() == consts::SOAP_MAX_ARGUMENTS {
            return Err(UpnpError::invalid_args());
        }
        let value = xml::value_text(argument).ok_or_else(UpnpError::invalid_args)?;
        arguments.push((argument.tag_name().name().to_owned(), value));
    }
    Ok(ActionCall {
        service_type: service_type.to_owned(),
        action: action_name.to_owned(),
        arguments,
    })
}

fn is_soap(node: roxmltree::Node<'_, '_>, name: &str) -> bool {
    node.is_element()
        && node.tag_name().name() == name
        && node.tag_name().namespace() == Some(consts::NS_SOAP_ENVELOPE)
}

/// Opens a SOAP envelope and its Body, as UDA 1.1 section 3.2 shows them.
fn open_envelope(out: &mut Vec<u8>) {
    out.extend_from_slice(SOAP_XML_DECLARATION.as_bytes());
    out.extend_from_slice(b"\n<s:Envelope xmlns:s=\"");
    xml::push_escaped_attribute(consts::NS_SOAP_ENVELOPE, out);
    out.extend_from_slice(b"\" s:encodingStyle=\"");
    xml::push_escaped_attribute(consts::SOAP_ENCODING, out);
    out.extend_from_slice(b"\"><s:Body>");
}

fn close_envelope(out: &mut Vec<u8>) {
    out.extend_from_slice(b"</s:Body></s:Envelope>\n");
}

/// Appends the body of an action request (UDA 1.1 section 3.2.1), as a control point sends
/// it: `u:<action>` in the service type's namespace, one element per in-argument in the order
/// given (which must be the SCPD order), values escaped. The POST, HOST, CONTENT-TYPE and
/// SOAPACTION ([`soap_action_header`]) are the caller's job.
///
/// `action` and the argument names come from a parsed SCPD or a static table and are written
/// as they are; they must be XML names.
pub fn write_call(service_type: &str, action: &str, arguments: &[(&str, &str)], out: &mut Vec<u8>) {
    write_action_element(service_type, action, "", arguments, out);
}

/// The SOAPACTION header value of a call (UDA 1.1 section 3.2.1): `"<service type>#<action>"`,
/// double quotes included.
pub fn soap_action_header(service_type: &str, action: &str) -> String {
    format!("\"{service_type}#{action}\"")
}

/// Appends the body of a successful action response (UDA 1.1 section 3.2.2):
/// `u:<action>Response` in the service type's namespace, one element per out-argument in the
/// order given (which must be the SCPD order), values escaped. HTTP 200 and the headers are
/// the caller's job.
///
/// `action` and the output names come from the static action tables and are written as they
/// are; they must be XML names.
pub fn write_response(
    service_type: &str,
    action: &str,
    outputs: &[(&str, &str)],
    out: &mut Vec<u8>,
) {
    write_action_element(service_type, action, SOAP_RESPONSE_SUFFIX, outputs, out);
}

/// The one envelope writer of calls and responses: `u:<action><suffix>` in the service type's
/// namespace holding `values` as elements, inside a SOAP envelope.
fn write_action_element(
    service_type: &str,
    action: &str,
    suffix: &str,
    values: &[(&str, &str)],
    out: &mut Vec<u8>,
) {
    open_envelope(out);
    out.extend_from_slice(b"<u:");
    out.extend_from_slice(action.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(b" xmlns:u=\"");
    xml::push_escaped_attribute(service_type, out);
    out.extend_from_slice(b"\">");
    for (name, value) in values {
        xml::push_element(name, value, out);
    }
    out.extend_from_slice(b"</u:");
    out.extend_from_slice(action.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(b">");
    close_envelope(out);
}

/// Appends the body of an action error response, exactly as UDA 1.1 section 3.2.2 gives it:
/// `s:Fault` with faultcode `s:Client`, faultstring `UPnPError` and a `detail` holding
/// `UPnPError` in the control namespace with `errorCode` and `errorDescription`.
///
/// The caller sends it with status 500 Internal Server Error (UDA 1.1 section 3.2.2), which is
/// not this function's business.
pub fn write_fault(error: &UpnpError, out: &mut Vec<u8>) {
    open_envelope(out);
    out.extend_from_slice(
        b"<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>\
          <detail><UPnPError xmlns=\"",
    );
    xml::push_escaped_attribute(consts::NS_CONTROL, out);
    out.extend_from_slice(b"\"><errorCode>");
    out.extend_from_slice(error.code.to_string().as_bytes());
    out.extend_from_slice(b"</errorCode><errorDescription>");
    xml::push_escaped(&error.description, out);
    out.extend_from_slice(b"</errorDescription></UPnPError></detail></s:Fault>");
    close_envelope(out);
}

/// Why a control point cannot use an action response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The device refused the call with a UPnP fault (UDA 1.1 section 3.2.2): its errorCode
    /// and errorDescription (empty when the device sent none).
    Fault(UpnpError),
    /// The body is not a response to this call: why, in words for a log line (peer text
    /// quoted and cut with [`xml::shown`]).
    Malformed(String),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Fault(error) => error.fmt(f),
            ResponseError::Malformed(reason) => write!(f, "unusable action response: {reason}"),
        }
    }
}

impl std::error::Error for ResponseError {}

fn malformed(reason: impl Into<String>) -> ResponseError {
    ResponseError::Malformed(reason.into())
}

/// Characters of peer text quoted in a [`ResponseError::Malformed`] reason, at most.
const SHOWN_CHARS: usize = 64;

/// A peer's element name for a reason: `{namespace}local`, quoted and cut.
fn shown_name(node: roxmltree::Node<'_, '_>) -> String {
    let name = node.tag_name();
    match name.namespace().filter(|namespace| !namespace.is_empty()) {
        Some(namespace) => xml::shown(&format!("{{{namespace}}}{}", name.name()), SHOWN_CHARS),
        None => xml::shown(name.name(), SHOWN_CHARS),
    }
}

/// Whether `node` is the element `local` in `namespace` or in no namespace at all.
fn is_element_or_unqualified(node: roxmltree::Node<'_, '_>, namespace: &str, local: &str) -> bool {
    xml::is_element(node, namespace, local)
        || (node.is_element()
            && node.tag_name().name() == local
            && node.tag_name().namespace().is_none_or(str::is_empty))
}

/// Parses the body of the answer to a call of `action` at `service_type` (UDA 1.1 section
/// 3.2.2), as a control point receives it, whatever the HTTP status was.
///
/// Envelope, Body and Fault are matched by the SOAP 1.1 namespace URI, whatever their
/// prefixes; a SOAP Header is skipped. The first element of Body is either
///
/// - `<action>Response` in the `service_type` namespace (any prefix): its child elements are
///   the out-arguments, returned in document order as local name and text (entities and
///   CDATA decoded, white space kept); at most [`consts::SOAP_MAX_ARGUMENTS`], each holding
///   text only; or
/// - a `Fault`, whose `detail` (unqualified, or in the SOAP namespace) holds `UPnPError` in
///   the control namespace `urn:schemas-upnp-org:control-1-0` with `errorCode` (decimal,
///   required) and `errorDescription` (optional, then empty), each in that namespace or
///   unqualified: that is [`ResponseError::Fault`].
///
/// The body is parsed under the same limits as [`parse_call`]. Anything else, including a
/// SOAP fault without a UPnPError or the response of another action or service, is
/// [`ResponseError::Malformed`].
pub fn parse_response(
    body: &[u8],
    service_type: &str,
    action: &str,
) -> Result<Vec<(String, String)>, ResponseError> {
    let document = xml::parse_bounded(body, ENVELOPE_LIMITS)
        .map_err(|error| malformed(ENVELOPE_LIMITS.explain(error)))?;
    let envelope = document.root_element();
    if !is_soap(envelope, "Envelope") {
        return Err(malformed(format!(
            "the root element is {}, not a SOAP 1.1 Envelope",
            shown_name(envelope)
        )));
    }
    let soap_body = xml::single_child(envelope, |child| is_soap(child, "Body"))
        .map_err(|_| malformed("more than one SOAP Body"))?
        .ok_or_else(|| malformed("no SOAP Body"))?;
    let answer = soap_body
        .first_element_child()
        .ok_or_else(|| malformed("an empty SOAP Body"))?;
    if is_soap(answer, "Fault") {
        return Err(parse_fault(answer));
    }
    let expected = format!("{action}{}", SOAP_RESPONSE_SUFFIX);
    if !xml::is_element(answer, service_type, &expected) {
        return Err(malformed(format!(
            "expected {expected} in {service_type}, got {}",
            shown_name(answer)
        )));
    }
    let mut outputs = Vec::new();
    for argument in answer.children().filter(|child| child.is_element()) {
        if outputs.len() == consts::SOAP_MAX_ARGUMENTS {
            return Err(malformed(format!(
                "more than {} out-arguments",
                consts::SOAP_MAX_ARGUMENTS
            )));
        }
        let value = xml::value_text(argument).ok_or_else(|| {
            malformed(format!(
                "out-argument {} holds an element",
                shown_name(argument)
            ))
        })?;
        outputs.push((argument.tag_name().name().to_owned(), value));
    }
    Ok(outputs)
}

/// Reads the UPnPError of a SOAP Fault (UDA 1.1 section 3.2.2).
fn parse_fault(fault: roxmltree::Node<'_, '_>) -> ResponseError {
    match upnp_error(fault) {
        Ok(error) => ResponseError::Fault(error),
        Err(reason) => reason,
    }
}

fn upnp_error(fault: roxmltree::Node<'_, '_>) -> Result<UpnpError, ResponseError> {
    let one = |parent, namespace: &'static str, local: &'static str| {
        xml::single_child(parent, |child| {
            is_element_or_unqualified(child, namespace, local)
        })
        .map_err(|_| malformed(format!("the SOAP fault has more than one {local}")))
    };
    let detail = one(fault, consts::NS_SOAP_ENVELOPE, "detail")?;
    let upnp = match detail {
        Some(detail) => xml::single_child(detail, |child| {
            xml::is_element(child, consts::NS_CONTROL, "UPnPError")
        })
        .map_err(|_| malformed("the SOAP fault has more than one UPnPError"))?,
        None => None,
    };
    let Some(upnp) = upnp else {
        let faultstring = fault
            .children()
            .find(|child| {
                is_element_or_unqualified(*child, consts::NS_SOAP_ENVELOPE, "faultstring")
            })
            .and_then(xml::element_text)
            .unwrap_or_default();
        return Err(malformed(format!(
            "a SOAP fault without UPnPError detail (faultstring {})",
            xml::shown(&faultstring, SHOWN_CHARS)
        )));
    };
    let code = one(upnp, consts::NS_CONTROL, "errorCode")?
        .ok_or_else(|| malformed("a UPnPError without errorCode"))?;
    let code_text = xml::element_text(code).unwrap_or_default();
    let code = Some(code_text.as_str())
        .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|text| text.parse::<u16>().ok())
        .ok_or_else(|| {
            malformed(format!(
                "errorCode {} is not a number up to 65535",
                xml::shown(&code_text, SHOWN_CHARS)
            ))
        })?;
    let description = match one(upnp, consts::NS_CONTROL, "errorDescription")? {
        Some(node) => {
            xml::element_text(node).ok_or_else(|| malformed("errorDescription holds an element"))?
        }
        None => String::new(),
    };
    Ok(UpnpError::new(code, description))
}

/// Checks a call's arguments against the action's in-argument names (`inputs`, in SCPD order,
/// from the service table in [`crate::model`]): UDA 1.1 section 3.2.1 requires every
/// in-argument, in that order, and nothing else; anything different is 402 Invalid Args.
pub fn check_arguments<'n>(
    inputs: impl IntoIterator<Item = &'n str>,
    call: &ActionCall,
) -> Result<(), UpnpError> {
    let mut given = call.arguments.iter().map(|(name, _)| name.as_str());
    let mut expected = inputs.into_iter();
    loop {
        match (given.next(), expected.next()) {
            (None, None) => return Ok(()),
            (Some(a), Some(b)) if a == b => continue,
            _ => return Err(UpnpError::invalid_args()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = consts::URN_SERVICE_DOMAIN_CONTROL;

    /// Shaped like a GUPnP (libsoup) control point's request: `s:` prefix, encodingStyle
    /// after xmlns, everything on one line.
    static GUPNP: &[u8] = b"<?xml version=\"1.0\"?>\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:Shutdown xmlns:u=\"urn:xenplug-org:service:DomainControl:1\"><Mode>clean</Mode><Force>0</Force></u:Shutdown></s:Body></s:Envelope>";

    /// Shaped like an async-upnp-client request: encodingStyle before xmlns:s, an action with
    /// one argument, escaped text.
    static ASYNC_UPNP: &[u8] = b"<?xml version=\"1.0\"?><s:Envelope s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:Rename xmlns:u=\"urn:xenplug-org:service:DomainControl:1\"><NewName>web &amp; db &lt;1&gt;</NewName></u:Rename></s:Body></s:Envelope>";

    /// Unusual but legal: other prefixes, a SOAP Header, comments, CDATA, indentation.
    static UNUSUAL: &[u8] = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\">
  <SOAP-ENV:Header><x:Trace xmlns:x=\"urn:example\">1</x:Trace></SOAP-ENV:Header>
  <SOAP-ENV:Body>
    <!-- a comment -->
    <m:Shutdown xmlns:m=\"urn:xenplug-org:service:DomainControl:1\">
      <Mode><![CDATA[cl]]>e<!-- split -->an</Mode>
      <Force/>
    </m:Shutdown>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
";

    /// Default namespaces only, no prefixes at all.
    static DEFAULT_NS: &[u8] = b"<Envelope xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\"><Body><Shutdown xmlns=\"urn:xenplug-org:service:DomainControl:1\"><Mode>clean</Mode><Force>1</Force></Shutdown></Body></Envelope>";

    const SHUTDOWN: [&str; 2] = ["Mode", "Force"];

    fn args(call: &ActionCall) -> Vec<(&str, &str)> {
        call.arguments
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }

    #[test]
    fn soap_action_headers_parse() {
        let expected = Ok((DOMAIN, "Shutdown"));
        assert_eq!(
            parse_soap_action("\"urn:xenplug-org:service:DomainControl:1#Shutdown\""),
            expected
        );
        assert_eq!(
            parse_soap_action(" urn:xenplug-org:service:DomainControl:1#Shutdown "),
            expected
        );
        for bad in [
            "",
            "\"\"",
            "\"",
            "urn:x#",
            "#Shutdown",
            "urn:x",
            "\"urn:x#A",
            "urn:x#A\"",
            "urn:x#A#B",
            "urn:x#A B",
        ] {
            assert_eq!(
                parse_soap_action(bad),
                Err(UpnpError::invalid_action()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parses_gupnp_request() {
        let call = parse_call(
            GUPNP,
            Some("\"urn:xenplug-org:service:DomainControl:1#Shutdown\""),
        )
        .unwrap();
        assert_eq!(call.service_type, DOMAIN);
        assert_eq!(call.action, "Shutdown");
        assert_eq!(args(&call), [("Mode", "clean"), ("Force", "0")]);
        assert_eq!(call.argument("Force"), Some("0"));
        assert_eq!(call.argument("Missing"), None);
        assert_eq!(check_arguments(SHUTDOWN, &call), Ok(()));
    }

    #[test]
    fn parses_async_upnp_client_request() {
        let call = parse_call(
            ASYNC_UPNP,
            Some("urn:xenplug-org:service:DomainControl:1#Rename"),
        )
        .unwrap();
        assert_eq!(call.action, "Rename");
        assert_eq!(args(&call), [("NewName", "web & db <1>")]);
        assert_eq!(check_arguments(["NewName"], &call), Ok(()));
    }

    #[test]
    fn parses_unusual_prefixes_and_default_namespaces() {
        let call = parse_call(UNUSUAL, None).unwrap();
        assert_eq!(call.service_type, DOMAIN);
        assert_eq!(args(&call), [("Mode", "clean"), ("Force", "")]);
        let call = parse_call(DEFAULT_NS, None).unwrap();
        assert_eq!(call.action, "Shutdown");
        assert_eq!(args(&call), [("Mode", "clean"), ("Force", "1")]);
    }

    #[test]
    fn wrong_namespaces_are_refused() {
        let soap12 = String::from_utf8(GUPNP.to_vec()).unwrap().replace(
            "http://schemas.xmlsoap.org/soap/envelope/",
            "http://www.w3.org/2003/05/soap-envelope",
        );
        assert_eq!(
            parse_call(soap12.as_bytes(), None),
            Err(UpnpError::invalid_args())
        );
        let no_action_ns = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><Shutdown/></s:Body></s:Envelope>";
        assert_eq!(
            parse_call(no_action_ns, None),
            Err(UpnpError::invalid_action())
        );
        // Found by the soap fuzz target: xmlns="" undeclares the default namespace.
        let undeclared = b"<Envelope xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\"><Body><Go xmlns=\"\"/></Body></Envelope>";
        assert_eq!(
            parse_call(undeclared, None),
            Err(UpnpError::invalid_action())
        );
        let no_body = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><Body><u:A xmlns:u=\"urn:x\"/></Body></s:Envelope>";
        assert_eq!(parse_call(no_body, None), Err(UpnpError::invalid_args()));
        let empty_body = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body> </s:Body></s:Envelope>";
        assert_eq!(
            parse_call(empty_body, None),
            Err(UpnpError::invalid_action())
        );
    }

    #[test]
    fn soap_action_must_agree_with_body() {
        for header in [
            "\"urn:xenplug-org:service:DomainControl:1#Rename\"",
            "\"urn:xenplug-org:service:Hypervisor:1#Shutdown\"",
            "\"urn:xenplug-org:service:DomainControl:2#Shutdown\"",
            "garbage",
        ] {
            assert_eq!(
                parse_call(GUPNP, Some(header)),
                Err(UpnpError::invalid_action()),
                "{header}"
            );
        }
    }

    #[test]
    fn arguments_are_bounded_and_flat() {
        let mut many = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:A xmlns:u=\"urn:x\">".to_vec();
        for _ in 0..consts::SOAP_MAX_ARGUMENTS {
            many.extend_from_slice(b"<a>1</a>");
        }
        let end = b"</u:A></s:Body></s:Envelope>";
        let mut exact = many.clone();
        exact.extend_from_slice(end);
        assert_eq!(
            parse_call(&exact, None).unwrap().arguments.len(),
            consts::SOAP_MAX_ARGUMENTS
        );
        many.extend_from_slice(b"<a>1</a>");
        many.extend_from_slice(end);
        assert_eq!(parse_call(&many, None), Err(UpnpError::invalid_args()));
        let nested = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:A xmlns:u=\"urn:x\"><a><b/></a></u:A></s:Body></s:Envelope>";
        assert_eq!(parse_call(nested, None), Err(UpnpError::invalid_args()));
    }

    #[test]
    fn hostile_xml_is_invalid_args() {
        let laughs = b"<?xml version=\"1.0\"?><!DOCTYPE s:Envelope [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:A xmlns:u=\"urn:x\"><v>&c;</v></u:A></s:Body></s:Envelope>";
        assert_eq!(parse_call(laughs, None), Err(UpnpError::invalid_args()));

        let mut deep = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:A xmlns:u=\"urn:x\">".to_vec();
        for _ in 0..10_000 {
            deep.extend_from_slice(b"<v>");
        }
        assert_eq!(parse_call(&deep, None), Err(UpnpError::invalid_args()));

        let mut huge = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:A xmlns:u=\"urn:x\"><v>".to_vec();
        huge.resize(1 << 20, b'x');
        huge.extend_from_slice(b"</v></u:A></s:Body></s:Envelope>");
        assert_eq!(parse_call(&huge, None), Err(UpnpError::invalid_args()));

        for bad in [&b""[..], b"not xml", b"<a>", b"\xff\xfe<\x00a\x00/>"] {
            assert_eq!(parse_call(bad, None), Err(UpnpError::invalid_args()));
        }
    }

    #[test]
    fn every_truncated_prefix_is_an_error_not_a_panic() {
        for fixture in [GUPNP, ASYNC_UPNP, UNUSUAL, DEFAULT_NS] {
            // The last byte of UNUSUAL is a newline after the root element; dropping it
            // leaves a complete document, so stop before the root element's `>`.
            let complete = fixture.iter().rposition(|&byte| byte == b'>').unwrap_or(0);
            for end in 0..=complete {
                assert!(parse_call(&fixture[..end], None).is_err(), "prefix {end}");
            }
            assert!(parse_call(fixture, None).is_ok());
        }
    }

    #[test]
    fn argument_checks() {
        let call = |arguments: &[&str]| ActionCall {
            service_type: DOMAIN.to_owned(),
            action: "Shutdown".to_owned(),
            arguments: arguments
                .iter()
                .map(|name| (name.to_string(), String::new()))
                .collect(),
        };
        assert_eq!(check_arguments(SHUTDOWN, &call(&["Mode", "Force"])), Ok(()));
        for bad in [
            &["Mode"][..],
            &["Force", "Mode"],
            &["Mode", "Force", "Extra"],
            &[],
            &["Mode", "Mode"],
        ] {
            assert_eq!(
                check_arguments(SHUTDOWN, &call(bad)),
                Err(UpnpError::invalid_args()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_display_and_describe() {
        assert_eq!(
            UpnpError::invalid_args().to_string(),
            "UPnP error 402: Invalid Args"
        );
        assert_eq!(
            UpnpError::from_code(STRING_ARGUMENT_TOO_LONG).description,
            "String Argument Too Long"
        );
        assert_eq!(UpnpError::from_code(VENDOR_FIRST).description, "Error");
        assert_eq!(
            UpnpError::action_failed("domain is paused").to_string(),
            "UPnP error 501: domain is paused"
        );
    }

    #[test]
    fn descriptions_are_capped_at_a_char_boundary() {
        assert!(matches!(capped("short"), Cow::Borrowed("short")));
        let exact = "a".repeat(DESCRIPTION_MAX_BYTES);
        assert_eq!(capped(&exact), exact.as_str());
        let long = "a".repeat(DESCRIPTION_MAX_BYTES + 1);
        let cut = capped(&long);
        assert_eq!(cut.len(), DESCRIPTION_MAX_BYTES);
        assert!(cut.ends_with("..."));
        // Every length of text mixing 1-, 2-, 3- and 4-byte characters: valid UTF-8 (it is a
        // str), never longer than the bound, the longest prefix that fits.
        let mixed: String = "aé€😀".repeat(200);
        for end in (0..=mixed.len()).filter(|&end| mixed.is_char_boundary(end)) {
            let text = &mixed[..end];
            let cut = capped(text);
            assert!(cut.len() <= DESCRIPTION_MAX_BYTES, "{end}: {}", cut.len());
            if text.len() <= DESCRIPTION_MAX_BYTES {
                assert_eq!(cut, text);
            } else {
                let kept = cut.strip_suffix("...").expect("ellipsis");
                assert!(text.starts_with(kept));
                assert!(
                    kept.len() + 3 + 4 > DESCRIPTION_MAX_BYTES,
                    "{end}: {}",
                    kept.len()
                );
            }
        }
    }

    #[test]
    fn long_descriptions_are_capped_in_errors_and_faults() {
        let argument = "x".repeat(61_466);
        let error = UpnpError::new(ARGUMENT_VALUE_INVALID, format!("not a UUID: {argument:?}"));
        assert_eq!(error.description.len(), DESCRIPTION_MAX_BYTES);
        assert!(error.description.starts_with("not a UUID: \"xxx"));
        let mut fault = Vec::new();
        write_fault(&error, &mut fault);
        let Err(ResponseError::Fault(read)) = parse_response(&fault, DOMAIN, "Pause") else {
            panic!("a fault");
        };
        assert_eq!(read, error);
        // A device's long description is capped on the way in too.
        let mut long_fault = Vec::new();
        write_fault(
            &UpnpError {
                code: 501,
                description: Cow::Owned("y".repeat(10_000)),
            },
            &mut long_fault,
        );
        let Err(ResponseError::Fault(read)) = parse_response(&long_fault, DOMAIN, "Pause") else {
            panic!("a fault");
        };
        assert_eq!(read.description.len(), DESCRIPTION_MAX_BYTES);
    }

    #[test]
    fn response_matches_golden_file() {
        let mut out = Vec::new();
        write_response(
            DOMAIN,
            "Rename",
            &[("OldName", "web & <db>"), ("Empty", "")],
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(include_bytes!("../../tests/fixtures/soap/response.xml"))
        );
    }

    #[test]
    fn fault_matches_golden_file() {
        let mut out = Vec::new();
        write_fault(
            &UpnpError::new(801, "Caller not authorized <here>"),
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(include_bytes!("../../tests/fixtures/soap/fault.xml"))
        );
    }

    #[test]
    fn written_bodies_parse_back() {
        let mut out = Vec::new();
        write_response(DOMAIN, "Rename", &[("OldName", "a&b")], &mut out);
        let call = parse_call(
            &out,
            Some("urn:xenplug-org:service:DomainControl:1#RenameResponse"),
        )
        .unwrap();
        assert_eq!(args(&call), [("OldName", "a&b")]);

        let mut out = Vec::new();
        write_fault(&UpnpError::invalid_args(), &mut out);
        let text = core::str::from_utf8(&out).unwrap();
        let document = roxmltree::Document::parse(text).unwrap();
        let detail = document
            .descendants()
            .find(|node| node.has_tag_name((consts::NS_CONTROL, "UPnPError")))
            .unwrap();
        let field = |name: &str| {
            detail
                .children()
                .find(|node| node.has_tag_name((consts::NS_CONTROL, name)))
                .and_then(|node| node.text())
        };
        assert_eq!(field("errorCode"), Some("402"));
        assert_eq!(field("errorDescription"), Some("Invalid Args"));
        let fault = document
            .descendants()
            .find(|node| node.has_tag_name((consts::NS_SOAP_ENVELOPE, "Fault")))
            .unwrap();
        let code = fault
            .children()
            .find(|node| node.has_tag_name("faultcode"))
            .and_then(|node| node.text());
        assert_eq!(code, Some("s:Client"));
    }
    // ---- control point side: calls we send, responses we read --------------------------

    const HYPERVISOR: &str = consts::URN_SERVICE_HYPERVISOR;

    /// Shaped like a GUPnP (libsoup) device's response: one line, `u:` prefix.
    static GUPNP_RESPONSE: &[u8] = b"<?xml version=\"1.0\"?>\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:GetHostInfoResponse xmlns:u=\"urn:xenplug-org:service:Hypervisor:1\"><HostName>dom0-a</HostName><HostUuid>4c4c4544-0042-3510-8052-b4c04f4e4d32</HostUuid><HypervisorVersion>4.17</HypervisorVersion><Backend>sim</Backend><CpuCount>8</CpuCount><MemoryMiB>65536</MemoryMiB></u:GetHostInfoResponse></s:Body></s:Envelope>\n";

    /// Shaped like an async-upnp-client (ElementTree) device's response: no XML declaration,
    /// `st:` prefix, an XML document escaped inside a value.
    static ASYNC_UPNP_RESPONSE: &[u8] = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><st:ListVirtualMachinesResponse xmlns:st=\"urn:xenplug-org:service:Hypervisor:1\"><VirtualMachines>&lt;VirtualMachines&gt;&lt;VirtualMachine uuid=\"0b9a6a6e-2f51-4e53-9b43-0d4c7f0a3e11\" name=\"web &amp;amp; db\" state=\"running\"/&gt;&lt;/VirtualMachines&gt;</VirtualMachines></st:ListVirtualMachinesResponse></s:Body></s:Envelope>";

    /// Unusual but legal: other prefixes, a SOAP Header, comments, CDATA, indentation, and
    /// a value with white space that must be kept.
    static UNUSUAL_RESPONSE: &[u8] = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\">
  <SOAP-ENV:Header><x:Trace xmlns:x=\"urn:example\">1</x:Trace></SOAP-ENV:Header>
  <SOAP-ENV:Body>
    <!-- a comment -->
    <m:GetStateResponse xmlns:m=\"urn:xenplug-org:service:DomainControl:1\">
      <State><![CDATA[ run]]>ning<!-- split --> </State>
    </m:GetStateResponse>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
";

    /// Shaped like a GUPnP fault for an action error it has no text for: no
    /// errorDescription.
    static FAULT_WITHOUT_DESCRIPTION: &[u8] = b"<?xml version=\"1.0\"?>\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>718</errorCode></UPnPError></detail></s:Fault></s:Body></s:Envelope>";

    /// A fault with prefixed UPnPError fields, indentation and a padded code.
    static PREFIXED_FAULT: &[u8] = b"<?xml version=\"1.0\"?>
<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">
 <s:Body>
  <s:Fault>
   <faultcode>s:Client</faultcode>
   <faultstring>UPnPError</faultstring>
   <detail>
    <u:UPnPError xmlns:u=\"urn:schemas-upnp-org:control-1-0\">
     <u:errorCode> 501 </u:errorCode>
     <errorDescription>Action Failed</errorDescription>
    </u:UPnPError>
   </detail>
  </s:Fault>
 </s:Body>
</s:Envelope>
";

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn is_malformed<T: fmt::Debug>(result: &Result<T, ResponseError>) -> bool {
        matches!(result, Err(ResponseError::Malformed(_)))
    }

    #[test]
    fn call_matches_golden_file() {
        let mut out = Vec::new();
        write_call(
            DOMAIN,
            "Shutdown",
            &[("Mode", "clean & <now>"), ("Force", "")],
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(include_bytes!("../../tests/fixtures/soap/call.xml"))
        );
    }

    #[test]
    fn written_calls_parse_back_to_the_same_call() {
        let arguments = [
            ("Mode", " clean\r\n & <now> \"'\t"),
            ("Force", ""),
            ("Name", "grüße ]]> &amp;"),
        ];
        let mut out = Vec::new();
        write_call(DOMAIN, "Shutdown", &arguments, &mut out);
        let header = soap_action_header(DOMAIN, "Shutdown");
        let call = parse_call(&out, Some(&header)).unwrap();
        assert_eq!(
            call,
            ActionCall {
                service_type: DOMAIN.to_owned(),
                action: "Shutdown".to_owned(),
                arguments: owned(&arguments),
            }
        );
        let mut out = Vec::new();
        write_call(HYPERVISOR, "GetHostInfo", &[], &mut out);
        let call = parse_call(&out, Some(&soap_action_header(HYPERVISOR, "GetHostInfo"))).unwrap();
        assert_eq!(
            (call.service_type.as_str(), call.action.as_str()),
            (HYPERVISOR, "GetHostInfo")
        );
        assert!(call.arguments.is_empty());
    }

    #[test]
    fn soap_action_header_is_quoted_and_parses_back() {
        let header = soap_action_header(DOMAIN, "Shutdown");
        assert_eq!(
            header,
            "\"urn:xenplug-org:service:DomainControl:1#Shutdown\""
        );
        assert_eq!(parse_soap_action(&header), Ok((DOMAIN, "Shutdown")));
    }

    #[test]
    fn written_responses_parse_back() {
        let outputs = [
            ("OldName", " web & <db>\r\n"),
            ("Empty", ""),
            ("Quotes", "\"a\" 'b'"),
        ];
        let mut out = Vec::new();
        write_response(DOMAIN, "Rename", &outputs, &mut out);
        assert_eq!(parse_response(&out, DOMAIN, "Rename"), Ok(owned(&outputs)));
        let golden = include_bytes!("../../tests/fixtures/soap/response.xml");
        assert_eq!(
            parse_response(golden, DOMAIN, "Rename"),
            Ok(owned(&[("OldName", "web & <db>"), ("Empty", "")]))
        );
        let mut none = Vec::new();
        write_response(HYPERVISOR, "StartVirtualMachine", &[], &mut none);
        assert_eq!(
            parse_response(&none, HYPERVISOR, "StartVirtualMachine"),
            Ok(Vec::new())
        );
    }

    #[test]
    fn written_faults_parse_back() {
        for error in [
            UpnpError::invalid_action(),
            UpnpError::invalid_args(),
            UpnpError::new(801, "Caller not authorized <here> & \"there\""),
            UpnpError::new(ACTION_SPECIFIC_FIRST, ""),
        ] {
            let mut out = Vec::new();
            write_fault(&error, &mut out);
            // A fault answers any call: the action and service type do not matter.
            assert_eq!(
                parse_response(&out, DOMAIN, "Shutdown"),
                Err(ResponseError::Fault(error.clone()))
            );
        }
        let golden = include_bytes!("../../tests/fixtures/soap/fault.xml");
        assert_eq!(
            parse_response(golden, HYPERVISOR, "GetHostInfo"),
            Err(ResponseError::Fault(UpnpError::new(
                801,
                "Caller not authorized <here>"
            )))
        );
    }

    #[test]
    fn parses_gupnp_response() {
        assert_eq!(
            parse_response(GUPNP_RESPONSE, HYPERVISOR, "GetHostInfo"),
            Ok(owned(&[
                ("HostName", "dom0-a"),
                ("HostUuid", "4c4c4544-0042-3510-8052-b4c04f4e4d32"),
                ("HypervisorVersion", "4.17"),
                ("Backend", "sim"),
                ("CpuCount", "8"),
                ("MemoryMiB", "65536"),
            ]))
        );
    }

    #[test]
    fn parses_async_upnp_client_response() {
        let outputs =
            parse_response(ASYNC_UPNP_RESPONSE, HYPERVISOR, "ListVirtualMachines").unwrap();
        assert_eq!(
            outputs,
            owned(&[(
                "VirtualMachines",
                "<VirtualMachines><VirtualMachine uuid=\"0b9a6a6e-2f51-4e53-9b43-0d4c7f0a3e11\" name=\"web &amp; db\" state=\"running\"/></VirtualMachines>"
            )])
        );
        // The value is itself a document, one escaping level down.
        let inner = roxmltree::Document::parse(&outputs[0].1).unwrap();
        let vm = inner.root_element().first_element_child().unwrap();
        assert_eq!(vm.attribute("name"), Some("web & db"));
    }

    #[test]
    fn parses_unusual_response_keeping_white_space() {
        assert_eq!(
            parse_response(UNUSUAL_RESPONSE, DOMAIN, "GetState"),
            Ok(owned(&[("State", " running ")]))
        );
    }

    #[test]
    fn faults_with_missing_or_prefixed_fields() {
        assert_eq!(
            parse_response(FAULT_WITHOUT_DESCRIPTION, DOMAIN, "Shutdown"),
            Err(ResponseError::Fault(UpnpError::new(718, "")))
        );
        assert_eq!(
            parse_response(PREFIXED_FAULT, DOMAIN, "Shutdown"),
            Err(ResponseError::Fault(UpnpError::new(501, "Action Failed")))
        );
    }

    #[test]
    fn faults_that_are_not_upnp_errors_are_malformed() {
        let wrap = |detail: &str| {
            format!(
                "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><s:Fault><faultcode>s:Server</faultcode><faultstring>boom</faultstring>{detail}</s:Fault></s:Body></s:Envelope>"
            )
        };
        let upnp = |fields: &str| {
            wrap(&format!(
                "<detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\">{fields}</UPnPError></detail>"
            ))
        };
        let cases = [
            wrap(""),
            wrap("<detail/>"),
            wrap("<detail><UPnPError><errorCode>401</errorCode></UPnPError></detail>"),
            wrap("<detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-2-0\"><errorCode>401</errorCode></UPnPError></detail>"),
            wrap("<detail><e:UPnPError xmlns:e=\"urn:schemas-upnp-org:control-1-0\"><errorCode>1</errorCode></e:UPnPError></detail><detail/>"),
            upnp(""),
            upnp("<errorDescription>no code</errorDescription>"),
            upnp("<errorCode>abc</errorCode>"),
            upnp("<errorCode>-401</errorCode>"),
            upnp("<errorCode>+401</errorCode>"),
            upnp("<errorCode>65536</errorCode>"),
            upnp("<errorCode></errorCode>"),
            upnp("<errorCode><b>401</b></errorCode>"),
            upnp("<errorCode>401</errorCode><errorCode>402</errorCode>"),
            upnp("<errorCode>401</errorCode><errorDescription><b/></errorDescription>"),
        ];
        for body in &cases {
            let result = parse_response(body.as_bytes(), DOMAIN, "Shutdown");
            assert!(is_malformed(&result), "{body}: {result:?}");
        }
        let ResponseError::Malformed(reason) =
            parse_response(wrap("").as_bytes(), DOMAIN, "Shutdown").unwrap_err()
        else {
            panic!("not malformed");
        };
        assert!(reason.contains("\"boom\""), "{reason}");
    }

    #[test]
    fn response_of_another_action_or_service_is_malformed() {
        let mut out = Vec::new();
        write_response(DOMAIN, "Rename", &[("OldName", "a")], &mut out);
        for (service, action) in [
            (DOMAIN, "Shutdown"),
            (DOMAIN, "RenameResponse"),
            (DOMAIN, "rename"),
            (HYPERVISOR, "Rename"),
            ("urn:xenplug-org:service:DomainControl:2", "Rename"),
        ] {
            let result = parse_response(&out, service, action);
            assert!(is_malformed(&result), "{service} {action}: {result:?}");
        }
        // The request itself is not a response.
        let mut call = Vec::new();
        write_call(DOMAIN, "Rename", &[("NewName", "a")], &mut call);
        assert!(is_malformed(&parse_response(&call, DOMAIN, "Rename")));
        let unqualified = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><RenameResponse><OldName>a</OldName></RenameResponse></s:Body></s:Envelope>";
        assert!(is_malformed(&parse_response(unqualified, DOMAIN, "Rename")));
        let ResponseError::Malformed(reason) =
            parse_response(&out, DOMAIN, "Shutdown").unwrap_err()
        else {
            panic!("not malformed");
        };
        assert!(reason.contains("ShutdownResponse"), "{reason}");
        assert!(reason.contains("RenameResponse"), "{reason}");
    }

    #[test]
    fn response_structure_is_checked() {
        let envelope = |body: &str| {
            format!("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">{body}</s:Envelope>")
        };
        let good = "<s:Body><u:GetStateResponse xmlns:u=\"urn:xenplug-org:service:DomainControl:1\"><State>running</State></u:GetStateResponse></s:Body>";
        assert_eq!(
            parse_response(envelope(good).as_bytes(), DOMAIN, "GetState"),
            Ok(owned(&[("State", "running")]))
        );
        for bad in [
            envelope(""),
            envelope("<s:Body/>"),
            envelope("<s:Body> <!-- nothing --> </s:Body>"),
            envelope(&format!("{good}{good}")),
            envelope("<Body><u:GetStateResponse xmlns:u=\"urn:xenplug-org:service:DomainControl:1\"/></Body>"),
            envelope("<s:Body><u:GetStateResponse xmlns:u=\"urn:xenplug-org:service:DomainControl:1\"><State><b>running</b></State></u:GetStateResponse></s:Body>"),
            envelope(good).replace(
                "http://schemas.xmlsoap.org/soap/envelope/",
                "http://www.w3.org/2003/05/soap-envelope",
            ),
        ] {
            let result = parse_response(bad.as_bytes(), DOMAIN, "GetState");
            assert!(is_malformed(&result), "{bad}: {result:?}");
        }
    }

    #[test]
    fn out_arguments_are_bounded() {
        let build = |count: usize| {
            let outputs: Vec<(&str, &str)> = (0..count).map(|_| ("a", "1")).collect();
            let mut out = Vec::new();
            write_response(DOMAIN, "GetState", &outputs, &mut out);
            out
        };
        assert_eq!(
            parse_response(&build(consts::SOAP_MAX_ARGUMENTS), DOMAIN, "GetState")
                .unwrap()
                .len(),
            consts::SOAP_MAX_ARGUMENTS
        );
        assert!(is_malformed(&parse_response(
            &build(consts::SOAP_MAX_ARGUMENTS + 1),
            DOMAIN,
            "GetState"
        )));
    }

    #[test]
    fn hostile_responses_are_malformed() {
        let laughs = b"<?xml version=\"1.0\"?><!DOCTYPE s:Envelope [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:AResponse xmlns:u=\"urn:x\"><v>&b;</v></u:AResponse></s:Body></s:Envelope>";
        let mut deep = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:AResponse xmlns:u=\"urn:x\">".to_vec();
        for _ in 0..10_000 {
            deep.extend_from_slice(b"<v>");
        }
        let mut huge = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:AResponse xmlns:u=\"urn:x\"><v>".to_vec();
        huge.resize(consts::SOAP_MAX_ENVELOPE + 1, b'x');
        huge.extend_from_slice(b"</v></u:AResponse></s:Body></s:Envelope>");
        let mut many = b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:AResponse xmlns:u=\"urn:x\">".to_vec();
        for _ in 0..SOAP_MAX_NODES {
            many.extend_from_slice(b"<!---->");
        }
        many.extend_from_slice(b"</u:AResponse></s:Body></s:Envelope>");
        let hostile: [&[u8]; 8] = [
            laughs,
            &deep,
            &huge,
            &many,
            b"",
            b"not xml",
            b"\xff\xfe<\x00a\x00/>",
            b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><u:AResponse xmlns:u=\"urn:x\"><v>\xc3\x28</v></u:AResponse></s:Body></s:Envelope>",
        ];
        for body in hostile {
            let result = parse_response(body, "urn:x", "A");
            assert!(
                is_malformed(&result),
                "{}: {result:?}",
                xml::shown(&String::from_utf8_lossy(body), 80)
            );
        }
    }

    #[test]
    fn every_truncated_response_is_an_error_not_a_panic() {
        let mut written = Vec::new();
        write_response(DOMAIN, "Rename", &[("OldName", "a&b")], &mut written);
        let mut fault = Vec::new();
        write_fault(&UpnpError::invalid_args(), &mut fault);
        let cases: [(&[u8], &str, &str); 7] = [
            (GUPNP_RESPONSE, HYPERVISOR, "GetHostInfo"),
            (ASYNC_UPNP_RESPONSE, HYPERVISOR, "ListVirtualMachines"),
            (UNUSUAL_RESPONSE, DOMAIN, "GetState"),
            (FAULT_WITHOUT_DESCRIPTION, DOMAIN, "Shutdown"),
            (PREFIXED_FAULT, DOMAIN, "Shutdown"),
            (&written, DOMAIN, "Rename"),
            (&fault, DOMAIN, "Rename"),
        ];
        for (fixture, service, action) in cases {
            // Stop before the root element's `>`: dropping only trailing white space leaves
            // a complete document.
            let complete = fixture.iter().rposition(|&byte| byte == b'>').unwrap_or(0);
            for end in 0..=complete {
                let result = parse_response(&fixture[..end], service, action);
                assert!(is_malformed(&result), "prefix {end}: {result:?}");
            }
            assert!(!is_malformed(&parse_response(fixture, service, action)));
        }
    }

    #[test]
    fn response_errors_display() {
        assert_eq!(
            ResponseError::Fault(UpnpError::invalid_action()).to_string(),
            "UPnP error 401: Invalid Action"
        );
        assert_eq!(
            ResponseError::Malformed("no SOAP Body".into()).to_string(),
            "unusable action response: no SOAP Body"
        );
    }
}
