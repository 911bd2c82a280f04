//! Engine layer: a control request resolved once against the device's own tables.
//!
//! [`admit`] first decides from the request's headers alone whether it is a control request at
//! all (CONTENT-TYPE and SOAPACTION, UDA 1.1 section 3.2.1); [`resolve`] then takes what the
//! control point sent (the control URL's service key, the SOAPACTION header, the SOAP body)
//! and the published device tree, and answers either a [`ControlCall`] (the service, the
//! action, the input arguments read as their state variables' types) or the UPnP error to
//! send back. Apps perform calls without looking anything up again. No I/O, no clock.

use std::fmt;

use crate::model::{ActionSpec, Device, Direction, Service, VariableSpec};
use crate::wire::soap::{self, UpnpError};
use uuid::Uuid;

/// Media types a control request's body may be declared as (CONTENT-TYPE without its
/// parameters, compared case-insensitively): UDA 1.1 section 3.2.1 sends `text/xml`; SOAP 1.2
/// names `application/soap+xml`.
const CONTROL_MEDIA_TYPES: [&str; 2] = ["text/xml", "application/soap+xml"];

/// Why a POST to a control URL is refused before its body is read: an HTTP status, not a UPnP
/// error, since the request is not a control request at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 415 Unsupported Media Type: CONTENT-TYPE missing, or not one of `text/xml` and
    /// `application/soap+xml`.
    MediaType,
    /// 400 Bad Request: no SOAPACTION header (UDA 1.1 section 3.2.1 requires it).
    NoSoapAction,
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Refusal::MediaType => 415,
            Refusal::NoSoapAction => 400,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::MediaType => "CONTENT-TYPE is not text/xml or application/soap+xml",
            Refusal::NoSoapAction => "no SOAPACTION header",
        })
    }
}

/// Whether a POST to a control URL with these CONTENT-TYPE and SOAPACTION headers is a control
/// request; the SOAPACTION value when it is.
///
/// UDA 1.1 section 3.2.1 gives every control request both headers. Requiring them is also
/// what keeps a web page from acting on a device: a browser sends a cross-site POST without
/// asking the server first (a CORS preflight) only with a CORS-safelisted content type
/// (`text/plain`, `application/x-www-form-urlencoded`, `multipart/form-data`) and no header
/// of the page's own, and a device answers no preflight. A page on any host the allow-list
/// admits could otherwise POST an envelope as `text/plain` and pause a VM.
pub fn admit<'a>(
    content_type: Option<&str>,
    soap_action: Option<&'a str>,
) -> Result<&'a str, Refusal> {
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !CONTROL_MEDIA_TYPES
        .iter()
        .any(|allowed| media_type.eq_ignore_ascii_case(allowed))
    {
        return Err(Refusal::MediaType);
    }
    soap_action.ok_or(Refusal::NoSoapAction)
}

/// A control request that names a service and an action of this device, with input arguments
/// that match the action's table and their state variables' types.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlCall {
    /// The service the control URL names.
    pub service: Service,
    /// The VM UUID of the device that holds the service (a Domain, a VirtualMachine), if any.
    pub vm_uuid: Option<Uuid>,
    /// The action called.
    pub action: ActionSpec,
    /// Index of the action in `service.spec.actions`: apps whose tables are built from a list
    /// of handlers find the handler there without a lookup by name.
    pub action_index: usize,
    /// The input arguments, in the action's order.
    pub arguments: Vec<Argument>,
}

impl ControlCall {
    /// The value of the input argument `name`, as sent.
    pub fn argument(&self, name: &str) -> Option<&str> {
        self.arguments
            .iter()
            .find(|argument| argument.name == name)
            .map(|argument| argument.text.as_str())
    }

    /// The input arguments as (name, value as sent) pairs.
    pub fn argument_pairs(&self) -> Vec<(String, String)> {
        self.arguments
            .iter()
            .map(|argument| (argument.name.clone(), argument.text.clone()))
            .collect()
    }
}

/// One input argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Argument {
    /// Its name in the action's table.
    pub name: String,
    /// The value as sent (XML entities decoded).
    pub text: String,
    /// The value read as the related state variable's data type.
    pub value: Value,
}

/// An argument value read as its UPnP data type (UDA 1.1 section 2.5).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `ui1`, `ui2`, `ui4`, `ui8`.
    Unsigned(u64),
    /// `i1`, `i2`, `i4`, `i8`, `int`.
    Signed(i64),
    /// `r4`, `r8`, `number`, `float`, `fixed.14.4`.
    Real(f64),
    /// `boolean`: `0`, `1`, `false`, `true`, `no`, `yes`.
    Boolean(bool),
    /// Every other type (`string`, `char`, `uuid`, dates, `uri`, binary encodings): the text.
    Text,
}

/// Resolves the control request for the service with `key` on the device tree `root`: the
/// SOAP body `body`, with the SOAPACTION header `soap_action` when the request had one.
///
/// Errors, as UDA 1.1 section 3.2.2 assigns them: a body that is not a SOAP action call 402,
/// an action the service does not have (or a SOAPACTION that disagrees with the body, or a
/// body addressed to another service type) 401, in-arguments missing, extra or out of order
/// 402, a value its data type cannot hold 600, a value outside the variable's
/// allowedValueList or outside its type's range 601. A service key `root` does not have is
/// `None`: that is an HTTP 404, not a UPnP error.
pub fn resolve(
    root: &Device,
    key: &str,
    soap_action: Option<&str>,
    body: &[u8],
) -> Option<Result<ControlCall, UpnpError>> {
    let (device, service) = root.walk().into_iter().find_map(|device| {
        device
            .services
            .iter()
            .find(|service| service.key == key)
            .map(|service| (device, service))
    })?;
    Some(resolve_in(device, service, soap_action, body))
}

fn resolve_in(
    device: &Device,
    service: &Service,
    soap_action: Option<&str>,
    body: &[u8],
) -> Result<ControlCall, UpnpError> {
    let call = soap::parse_call(body, soap_action)?;
    let spec = &service.spec;
    if call.service_type != spec.service_type {
        return Err(UpnpError::new(soap::INVALID_ACTION, "wrong service type"));
    }
    let (action_index, action) = spec
        .actions
        .iter()
        .enumerate()
        .find(|(_, action)| action.name == call.action)
        .ok_or_else(|| UpnpError::new(soap::INVALID_ACTION, "no such action"))?;
    soap::check_arguments(action.inputs(), &call)?;
    let inputs = action
        .arguments
        .iter()
        .filter(|argument| argument.direction == Direction::In);
    let arguments = inputs
        .zip(call.arguments)
        .map(|(argument, (name, text))| {
            let variable = spec.variables.iter().find(|v| v.name == argument.variable);
            let value = match variable {
                Some(variable) => read_value(variable, &text)?,
                None => Value::Text,
            };
            Ok(Argument { name, text, value })
        })
        .collect::<Result<Vec<_>, UpnpError>>()?;
    Ok(ControlCall {
        service: service.clone(),
        vm_uuid: device.vm_uuid,
        action: action.clone(),
        action_index,
        arguments,
    })
}

/// Reads `text` as `variable`'s data type and checks its allowedValueList.
fn read_value(variable: &VariableSpec, text: &str) -> Result<Value, UpnpError> {
    let value = read_typed(&variable.data_type, text)?;
    if !variable.allowed.is_empty() && !variable.allowed.iter().any(|allowed| allowed == text) {
        return Err(UpnpError::from_code(soap::ARGUMENT_VALUE_OUT_OF_RANGE));
    }
    Ok(value)
}

/// Reads `text` as the UPnP data type `data_type` (UDA 1.1 section 2.5). Numbers may carry
/// surrounding whitespace; a number too large for its type is 601, anything that is not a
/// value of the type 600.
fn read_typed(data_type: &str, text: &str) -> Result<Value, UpnpError> {
    let invalid = || UpnpError::from_code(soap::ARGUMENT_VALUE_INVALID);
    let out_of_range = || UpnpError::from_code(soap::ARGUMENT_VALUE_OUT_OF_RANGE);
    let trimmed = text.trim();
    let unsigned_max = match data_type {
        "ui1" => Some(u64::from(u8::MAX)),
        "ui2" => Some(u64::from(u16::MAX)),
        "ui4" => Some(u64::from(u32::MAX)),
        "ui8" => Some(u64::MAX),
        _ => None,
    };
    if let Some(max) = unsigned_max {
        if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let number: u64 = trimmed.parse().map_err(|_| out_of_range())?;
        return (number <= max)
            .then_some(Value::Unsigned(number))
            .ok_or_else(out_of_range);
    }
    let signed_range = match data_type {
        "i1" => Some((i64::from(i8::MIN), i64::from(i8::MAX))),
        "i2" => Some((i64::from(i16::MIN), i64::from(i16::MAX))),
        "i4" | "int" => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
        "i8" => Some((i64::MIN, i64::MAX)),
        _ => None,
    };
    if let Some((min, max)) = signed_range {
        let digits = trimmed.strip_prefix(['-', '+']).unwrap_or(trimmed);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let number: i64 = trimmed.parse().map_err(|_| out_of_range())?;
        return (min..=max)
            .contains(&number)
            .then_some(Value::Signed(number))
            .ok_or_else(out_of_range);
    }
    match data_type {
        "r4" | "r8" | "number" | "float" | "fixed.14.4" => {
            let number: f64 = trimmed.parse().map_err(|_| invalid())?;
            if number.is_finite() {
                Ok(Value::Real(number))
            } else {
                Err(invalid())
            }
        }
        "boolean" => match trimmed.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Ok(Value::Boolean(true)),
            "0" | "false" | "no" => Ok(Value::Boolean(false)),
            _ => Err(invalid()),
        },
        "char" if text.chars().count() != 1 => Err(invalid()),
        _ => Ok(Value::Text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction::In, Direction::Out, ServiceSpec};
    use std::sync::Arc;

    const TYPE: &str = "urn:example-org:service:Sample:1";

    fn spec() -> Arc<ServiceSpec> {
        Arc::new(
            ServiceSpec::new("Sample", TYPE, "urn:example-org:serviceId:Sample")
                .action(
                    "Set",
                    &[
                        ("Count", In, "A_ARG_TYPE_Count"),
                        ("Level", In, "A_ARG_TYPE_Level"),
                        ("Mode", In, "Mode"),
                        ("Enabled", In, "A_ARG_TYPE_Flag"),
                        ("Result", Out, "A_ARG_TYPE_Text"),
                    ],
                    &[],
                )
                .read_only_action("Get", &[("Result", Out, "A_ARG_TYPE_Text")], &[])
                .variable("A_ARG_TYPE_Count", "ui1", false, &[])
                .variable("A_ARG_TYPE_Level", "i2", false, &[])
                .variable("Mode", "string", true, &["Auto", "Manual"])
                .variable("A_ARG_TYPE_Flag", "boolean", false, &[])
                .variable("A_ARG_TYPE_Text", "string", false, &[]),
        )
    }

    fn tree() -> Device {
        let service = |key: &str| Service {
            spec: spec(),
            key: key.to_string(),
        };
        Device {
            device_type: "urn:example-org:device:Root:1".into(),
            udn: Uuid::from_u128(1),
            friendly_name: "root".into(),
            model_name: "m".into(),
            model_description: "d".into(),
            vm_uuid: None,
            services: vec![service("root")],
            devices: vec![Device {
                device_type: "urn:example-org:device:Leaf:1".into(),
                udn: Uuid::from_u128(2),
                friendly_name: "leaf".into(),
                model_name: "m".into(),
                model_description: "d".into(),
                vm_uuid: Some(Uuid::from_u128(3)),
                services: vec![service("leaf/3")],
                devices: Vec::new(),
            }],
        }
    }

    fn body(action: &str, arguments: &[(&str, &str)]) -> Vec<u8> {
        let mut inner = String::new();
        for (name, value) in arguments {
            inner.push_str(&format!("<{name}>{value}</{name}>"));
        }
        format!(
            "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
             <u:{action} xmlns:u=\"{TYPE}\">{inner}</u:{action}></s:Body></s:Envelope>"
        )
        .into_bytes()
    }

    fn set(count: &str, level: &str, mode: &str, enabled: &str) -> Vec<u8> {
        body(
            "Set",
            &[
                ("Count", count),
                ("Level", level),
                ("Mode", mode),
                ("Enabled", enabled),
            ],
        )
    }

    fn code(result: Option<Result<ControlCall, UpnpError>>) -> u16 {
        match result {
            Some(Err(error)) => error.code,
            other => panic!("expected a UPnP error, got {other:?}"),
        }
    }

    #[test]
    fn control_requests_need_an_xml_content_type_and_soapaction() {
        let action = Some("\"urn:x#Set\"");
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Result<&'a str, Refusal>);
        let cases: [Case<'_>; 14] = [
            // What GUPnP, async-upnp-client and xenplug's own relay send.
            (
                Some("text/xml; charset=\"utf-8\""),
                action,
                Ok("\"urn:x#Set\""),
            ),
            (Some("text/xml"), action, Ok("\"urn:x#Set\"")),
            (
                Some(" TEXT/XML ;charset=utf-8"),
                action,
                Ok("\"urn:x#Set\""),
            ),
            (
                Some("application/soap+xml; charset=utf-8"),
                action,
                Ok("\"urn:x#Set\""),
            ),
            // A present but malformed SOAPACTION is the resolver's 401, not a refusal here.
            (Some("text/xml"), Some(""), Ok("")),
            (Some("text/xml"), None, Err(Refusal::NoSoapAction)),
            // What a browser may send cross-site without a preflight.
            (Some("text/plain"), None, Err(Refusal::MediaType)),
            (Some("text/plain"), action, Err(Refusal::MediaType)),
            (
                Some("application/x-www-form-urlencoded"),
                action,
                Err(Refusal::MediaType),
            ),
            (
                Some("multipart/form-data; boundary=x"),
                action,
                Err(Refusal::MediaType),
            ),
            (None, action, Err(Refusal::MediaType)),
            (Some(""), action, Err(Refusal::MediaType)),
            (Some("text/xmlx"), action, Err(Refusal::MediaType)),
            (Some("application/xml"), action, Err(Refusal::MediaType)),
        ];
        for (content_type, soap_action, expected) in cases {
            assert_eq!(
                admit(content_type, soap_action),
                expected,
                "{content_type:?} {soap_action:?}"
            );
        }
        assert_eq!(Refusal::MediaType.status(), 415);
        assert_eq!(Refusal::NoSoapAction.status(), 400);
    }

    #[test]
    fn a_valid_call_resolves_with_typed_arguments() {
        let root = tree();
        let header = format!("\"{TYPE}#Set\"");
        let call = resolve(
            &root,
            "leaf/3",
            Some(&header),
            &set("7", "-3", "Auto", "yes"),
        )
        .expect("known service")
        .expect("valid call");
        assert_eq!(call.service.key, "leaf/3");
        assert_eq!(call.vm_uuid, Some(Uuid::from_u128(3)));
        assert_eq!(call.action.name, "Set");
        assert_eq!(call.action_index, 0);
        let values: Vec<&Value> = call.arguments.iter().map(|a| &a.value).collect();
        assert_eq!(
            values,
            [
                &Value::Unsigned(7),
                &Value::Signed(-3),
                &Value::Text,
                &Value::Boolean(true)
            ]
        );
        assert_eq!(call.argument("Enabled"), Some("yes"));
        assert_eq!(call.argument_pairs()[2], ("Mode".into(), "Auto".into()));

        let get = resolve(&root, "root", None, &body("Get", &[]))
            .expect("known service")
            .expect("valid call");
        assert_eq!((get.action_index, get.vm_uuid), (1, None));
        assert!(get.arguments.is_empty());
    }

    #[test]
    fn each_refusal_gets_its_upnp_code() {
        let root = tree();
        assert!(resolve(&root, "nowhere", None, &body("Get", &[])).is_none());
        let cases: [(Vec<u8>, Option<&str>, u16); 12] = [
            (b"not xml".to_vec(), None, 402),
            (body("Jump", &[]), None, 401),
            (
                body("Get", &[]),
                Some("\"urn:example-org:service:Sample:1#Set\""),
                401,
            ),
            (
                body("Get", &[]).replace_bytes(TYPE, "urn:example-org:service:Other:1"),
                None,
                401,
            ),
            (body("Set", &[("Count", "1")]), None, 402),
            (body("Get", &[("Extra", "1")]), None, 402),
            (set("256", "0", "Auto", "1"), None, 601),
            (set("x", "0", "Auto", "1"), None, 600),
            (set("1", "40000", "Auto", "1"), None, 601),
            (set("1", "--1", "Auto", "1"), None, 600),
            (set("1", "0", "Sometimes", "1"), None, 601),
            (set("1", "0", "Auto", "maybe"), None, 600),
        ];
        for (request, header, expected) in cases {
            assert_eq!(
                code(resolve(&root, "root", header, &request)),
                expected,
                "{}",
                String::from_utf8_lossy(&request)
            );
        }
    }

    #[test]
    fn data_types_read_as_uda_defines_them() {
        assert_eq!(
            read_typed("ui8", "18446744073709551615"),
            Ok(Value::Unsigned(u64::MAX))
        );
        assert_eq!(read_typed("ui4", " 42 "), Ok(Value::Unsigned(42)));
        assert_eq!(read_typed("ui4", "4294967296").unwrap_err().code, 601);
        assert_eq!(
            read_typed("ui8", "99999999999999999999").unwrap_err().code,
            601
        );
        assert_eq!(read_typed("ui4", "-1").unwrap_err().code, 600);
        assert_eq!(read_typed("i1", "-128"), Ok(Value::Signed(-128)));
        assert_eq!(read_typed("i1", "+127"), Ok(Value::Signed(127)));
        assert_eq!(read_typed("i1", "128").unwrap_err().code, 601);
        assert_eq!(read_typed("int", "1.5").unwrap_err().code, 600);
        assert_eq!(read_typed("r8", "1.5e3"), Ok(Value::Real(1500.0)));
        assert_eq!(read_typed("r4", "NaN").unwrap_err().code, 600);
        assert_eq!(read_typed("boolean", "TRUE"), Ok(Value::Boolean(true)));
        assert_eq!(read_typed("boolean", "No"), Ok(Value::Boolean(false)));
        assert_eq!(read_typed("char", "é"), Ok(Value::Text));
        assert_eq!(read_typed("char", "ab").unwrap_err().code, 600);
        assert_eq!(read_typed("string", ""), Ok(Value::Text));
        assert_eq!(read_typed("uuid", "anything"), Ok(Value::Text));
    }

    trait ReplaceBytes {
        fn replace_bytes(self, from: &str, to: &str) -> Vec<u8>;
    }

    impl ReplaceBytes for Vec<u8> {
        fn replace_bytes(self, from: &str, to: &str) -> Vec<u8> {
            String::from_utf8(self)
                .unwrap_or_default()
                .replace(from, to)
                .into_bytes()
        }
    }
}
