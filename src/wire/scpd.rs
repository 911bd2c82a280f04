//! Wire layer: parses an SCPD (UDA 1.1 section 2.5) a VM's owner wrote into a [`ServiceSpec`]
//! and checks that xenplug can serve it. No I/O, no clock, never panics on any input.
//!
//! Elements are matched by local name in the UPnP service namespace; other vendors' elements
//! are skipped; xenplug's namespace may appear only as `<xenplug:semantics>` inside an
//! `<action>`. What cannot be represented in [`ServiceSpec`] (`specVersion`, `retval`,
//! `defaultValue`, `allowedValueRange`, the `multicast` attribute) is accepted and dropped.

use roxmltree::Node;

use super::xml::{self, parse_bounded, Limits};
use crate::consts::{
    ELEMENT_SEMANTICS, NS_SERVICE, NS_XENPLUG, SCPD_MAX_ACTIONS, SCPD_MAX_ARGUMENTS,
    SCPD_MAX_BYTES, SCPD_MAX_NAME, SCPD_MAX_VARIABLES, SCPD_RESERVED_ARGUMENT, UPNP_DATA_TYPES,
};
use crate::model::{ActionSpec, ArgumentSpec, Direction, Semantic, ServiceSpec, VariableSpec};

/// Element nesting of an SCPD, at most (a real one needs 5: scpd, serviceStateTable,
/// stateVariable, allowedValueRange, minimum).
const SCPD_MAX_DEPTH: usize = 16;
/// XML nodes (elements, text runs, comments) in one SCPD, at most: more than a
/// [`SCPD_MAX_BYTES`] file of real declarations can hold.
const SCPD_MAX_NODES: u32 = 16 * 1024;

/// Limits an SCPD is parsed under.
pub const SCPD_LIMITS: Limits = Limits {
    max_bytes: SCPD_MAX_BYTES,
    max_depth: SCPD_MAX_DEPTH,
    max_nodes: SCPD_MAX_NODES,
};

/// Every [`Semantic`], to map SCPD tokens back with [`Semantic::as_str`].
const SEMANTICS: [Semantic; 3] = [
    Semantic::Idempotent,
    Semantic::Destructive,
    Semantic::Confirm,
];

/// Why an SCPD was refused: a sentence naming the offending action, argument or state
/// variable, meant to be logged once beside the file's path.
pub type ScpdError = xml::Refused;

type Result<T> = core::result::Result<T, ScpdError>;

/// Parses the SCPD `bytes` into the service type `name` (served at `/scpd/<name>.xml`) with
/// the given serviceType and serviceId, checking everything xenplug relies on:
///
/// - the root is `scpd` in `urn:schemas-upnp-org:service-1-0`, and a `serviceStateTable`
///   with at least one `stateVariable` is present (UDA 1.1 section 2.5: "Each service MUST
///   have > 0 state variables"); `actionList` may be absent;
/// - action, argument and variable names are 1 to [`SCPD_MAX_NAME`] bytes of
///   `[A-Za-z0-9_]`, not starting with a digit (they become environment variable and element
///   names), unique in their scope; no argument is called [`SCPD_RESERVED_ARGUMENT`];
/// - `direction` is `in` or `out`, in-arguments come before out-arguments (UDA 1.1 section
///   2.5: "all arguments with direction in MUST be listed before any with direction out"),
///   and every `relatedStateVariable` names a declared variable;
/// - `dataType` is one of [`UPNP_DATA_TYPES`]; `sendEvents` is `yes` (the default) or `no`;
/// - at most [`SCPD_MAX_ACTIONS`] actions, [`SCPD_MAX_ARGUMENTS`] arguments per action and
///   [`SCPD_MAX_VARIABLES`] variables;
/// - `xenplug:semantics` holds known, distinct [`Semantic`] tokens and appears at most once
///   per action; any other element of xenplug's namespace, or one outside an action, is an
///   error.
pub fn parse_scpd(
    bytes: &[u8],
    name: &str,
    service_type: &str,
    service_id: &str,
) -> Result<ServiceSpec> {
    let bytes = xml::without_byte_order_mark(bytes);
    let document =
        parse_bounded(bytes, SCPD_LIMITS).map_err(|e| ScpdError::new(SCPD_LIMITS.explain(e)))?;
    let root = document.root_element();
    if !is_upnp(root, "scpd") {
        return Err(ScpdError::new(format!(
            "the root element is not scpd in namespace {NS_SERVICE}"
        )));
    }
    check_vendor_elements(root)?;
    let action_list = single_child(root, "actionList")?;
    let state_table = single_child(root, "serviceStateTable")?
        .ok_or_else(|| ScpdError::new("serviceStateTable is missing"))?;
    let variables = parse_variables(state_table)?;
    let actions = match action_list {
        Some(list) => parse_actions(list, &variables)?,
        None => Vec::new(),
    };
    let mut spec = ServiceSpec::new(name, service_type, service_id);
    spec.actions = actions;
    spec.variables = variables;
    Ok(spec)
}

fn is_upnp(node: Node<'_, '_>, local: &str) -> bool {
    xml::is_element(node, NS_SERVICE, local)
}

fn is_xenplug(node: Node<'_, '_>) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(NS_XENPLUG)
}

/// Refuses any element of xenplug's namespace other than `semantics` directly inside an
/// `action`: a misspelt annotation must not be silently ignored.
fn check_vendor_elements(root: Node<'_, '_>) -> Result<()> {
    for node in root.descendants().filter(|node| is_xenplug(*node)) {
        let local = node.tag_name().name();
        if local != ELEMENT_SEMANTICS {
            return Err(ScpdError::new(format!(
                "unknown element {} in namespace {NS_XENPLUG}",
                shown(local)
            )));
        }
        if !node
            .parent()
            .is_some_and(|parent| is_upnp(parent, "action"))
        {
            return Err(ScpdError::new(format!(
                "{ELEMENT_SEMANTICS} in namespace {NS_XENPLUG} is allowed only inside an action"
            )));
        }
    }
    Ok(())
}

/// The one child `local` of `parent` in the UPnP namespace, if any; two is an error.
fn single_child<'a, 'input>(
    parent: Node<'a, 'input>,
    local: &str,
) -> Result<Option<Node<'a, 'input>>> {
    xml::single_child(parent, |child| is_upnp(child, local))
        .map_err(|_| ScpdError::new(format!("{local} is given more than once")))
}

/// The trimmed text of `node`, which must hold no element.
fn text_of(node: Node<'_, '_>) -> Result<String> {
    xml::element_text(node).ok_or_else(|| {
        ScpdError::new(format!(
            "{} must hold text, not elements",
            node.tag_name().name()
        ))
    })
}

/// The text of the required, single child `local` of `parent`.
fn required_text(parent: Node<'_, '_>, local: &str) -> Result<String> {
    let child = single_child(parent, local)?
        .ok_or_else(|| ScpdError::new(format!("{local} is missing")))?;
    text_of(child)
}

/// `text` quoted for a log line: control characters escaped, at most [`SCPD_MAX_NAME`]
/// characters shown.
fn shown(text: &str) -> String {
    xml::shown(text, SCPD_MAX_NAME)
}

/// Checks an action, argument or variable name: it becomes an environment variable name for
/// the handler and an element name in SOAP bodies and GENA property sets.
fn check_name(name: &str) -> core::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > SCPD_MAX_NAME {
        return Err("the name is longer than 64 bytes");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("the name starts with a digit");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("the name may hold only A-Z, a-z, 0-9 and _");
    }
    Ok(())
}

/// Reads the `name` child of an action, argument or variable (the `index`th, from 1, of its
/// `kind`) and checks it; errors name the item by its name when there is one.
fn item_name(node: Node<'_, '_>, kind: &str, index: usize) -> Result<String> {
    let name = required_text(node, "name").map_err(|e| e.within(&format!("{kind} {index}")))?;
    check_name(&name)
        .map_err(|reason| ScpdError::new(format!("{kind} {}: {reason}", shown(&name))))?;
    Ok(name)
}

fn parse_variables(table: Node<'_, '_>) -> Result<Vec<VariableSpec>> {
    let mut variables: Vec<VariableSpec> = Vec::new();
    for (index, node) in table
        .children()
        .filter(|child| is_upnp(*child, "stateVariable"))
        .enumerate()
    {
        if variables.len() >= SCPD_MAX_VARIABLES {
            return Err(ScpdError::new(format!(
                "more than {SCPD_MAX_VARIABLES} state variables"
            )));
        }
        let name = item_name(node, "state variable", index + 1)?;
        let context = format!("state variable {}", shown(&name));
        if variables.iter().any(|variable| variable.name == name) {
            return Err(ScpdError::new(format!("{context} is declared twice")));
        }
        let variable = parse_variable(node, name).map_err(|e| e.within(&context))?;
        variables.push(variable);
    }
    if variables.is_empty() {
        // UDA 1.1 section 2.5: "Each service MUST have > 0 state variables."
        return Err(ScpdError::new(
            "serviceStateTable declares no stateVariable",
        ));
    }
    Ok(variables)
}

fn parse_variable(node: Node<'_, '_>, name: String) -> Result<VariableSpec> {
    let evented = match node.attribute("sendEvents") {
        // UDA 1.1 section 2.5: sendEvents defaults to "yes".
        None | Some("yes") => true,
        Some("no") => false,
        Some(other) => {
            return Err(ScpdError::new(format!(
                "sendEvents is {}, not yes or no",
                shown(other)
            )))
        }
    };
    let data_type = required_text(node, "dataType")?;
    if !UPNP_DATA_TYPES.contains(&data_type.as_str()) {
        return Err(ScpdError::new(format!(
            "dataType {} is not a UDA 1.1 data type",
            shown(&data_type)
        )));
    }
    let mut allowed = Vec::new();
    if let Some(list) = single_child(node, "allowedValueList")? {
        for value in list
            .children()
            .filter(|child| is_upnp(*child, "allowedValue"))
        {
            allowed.push(text_of(value)?);
        }
    }
    Ok(VariableSpec {
        name,
        data_type,
        evented,
        allowed,
    })
}

fn parse_actions(list: Node<'_, '_>, variables: &[VariableSpec]) -> Result<Vec<ActionSpec>> {
    let mut actions: Vec<ActionSpec> = Vec::new();
    for (index, node) in list
        .children()
        .filter(|child| is_upnp(*child, "action"))
        .enumerate()
    {
        if actions.len() >= SCPD_MAX_ACTIONS {
            return Err(ScpdError::new(format!(
                "more than {SCPD_MAX_ACTIONS} actions"
            )));
        }
        let name = item_name(node, "action", index + 1)?;
        let context = format!("action {}", shown(&name));
        if actions.iter().any(|action| action.name == name) {
            return Err(ScpdError::new(format!("{context} is declared twice")));
        }
        let action = parse_action(node, name, variables).map_err(|e| e.within(&context))?;
        actions.push(action);
    }
    Ok(actions)
}

fn parse_action(
    node: Node<'_, '_>,
    name: String,
    variables: &[VariableSpec],
) -> Result<ActionSpec> {
    let mut arguments: Vec<ArgumentSpec> = Vec::new();
    if let Some(list) = single_child(node, "argumentList")? {
        for (index, argument) in list
            .children()
            .filter(|child| is_upnp(*child, "argument"))
            .enumerate()
        {
            if arguments.len() >= SCPD_MAX_ARGUMENTS {
                return Err(ScpdError::new(format!(
                    "more than {SCPD_MAX_ARGUMENTS} arguments"
                )));
            }
            let argument_name = item_name(argument, "argument", index + 1)?;
            let context = format!("argument {}", shown(&argument_name));
            if argument_name == SCPD_RESERVED_ARGUMENT {
                return Err(ScpdError::new(format!("{context}: the name is reserved")));
            }
            if arguments.iter().any(|known| known.name == argument_name) {
                return Err(ScpdError::new(format!("{context} is declared twice")));
            }
            let parsed = parse_argument(argument, argument_name, variables)
                .map_err(|e| e.within(&context))?;
            if parsed.direction == Direction::In
                && arguments
                    .iter()
                    .any(|known| known.direction == Direction::Out)
            {
                // UDA 1.1 section 2.5: in-arguments are listed before out-arguments.
                return Err(ScpdError::new(format!(
                    "{context}: an in-argument after an out-argument"
                )));
            }
            arguments.push(parsed);
        }
    }
    // check_vendor_elements let only semantics through as a xenplug child of an action.
    let mut annotations = node.children().filter(|child| is_xenplug(*child));
    let semantics = match annotations.next() {
        Some(annotation) => parse_semantics(annotation)?,
        None => Vec::new(),
    };
    if annotations.next().is_some() {
        return Err(ScpdError::new(format!(
            "{ELEMENT_SEMANTICS} is given more than once"
        )));
    }
    Ok(ActionSpec {
        name,
        arguments,
        semantics,
        // An SCPD does not say; whoever serves the action decides who may call it.
        read_only: false,
    })
}

fn parse_argument(
    node: Node<'_, '_>,
    name: String,
    variables: &[VariableSpec],
) -> Result<ArgumentSpec> {
    let direction = match required_text(node, "direction")?.as_str() {
        "in" => Direction::In,
        "out" => Direction::Out,
        other => {
            return Err(ScpdError::new(format!(
                "direction is {}, not in or out",
                shown(other)
            )))
        }
    };
    let variable = required_text(node, "relatedStateVariable")?;
    if !variables.iter().any(|known| known.name == variable) {
        return Err(ScpdError::new(format!(
            "relatedStateVariable {} is not in serviceStateTable",
            shown(&variable)
        )));
    }
    Ok(ArgumentSpec {
        name,
        direction,
        variable,
    })
}

fn parse_semantics(node: Node<'_, '_>) -> Result<Vec<Semantic>> {
    let mut semantics: Vec<Semantic> = Vec::new();
    for token in text_of(node)?.split_ascii_whitespace() {
        let semantic = SEMANTICS
            .into_iter()
            .find(|known| known.as_str() == token)
            .ok_or_else(|| {
                ScpdError::new(format!(
                    "{ELEMENT_SEMANTICS} token {} is not one of idempotent, destructive, confirm",
                    shown(token)
                ))
            })?;
        if semantics.contains(&semantic) {
            return Err(ScpdError::new(format!(
                "{ELEMENT_SEMANTICS} token {token} is given twice"
            )));
        }
        semantics.push(semantic);
    }
    Ok(semantics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{DOMAIN_CONTROL_SERVICE, HYPERVISOR_SERVICE};
    use crate::wire::description::render_scpd;
    use Direction::{In, Out};

    const TYPE: &str = "urn:xenplug-org:service:Backup:1";
    const ID: &str = "urn:xenplug-org:serviceId:Backup";

    /// As GUPnP's tools and most stacks write them: declaration, specVersion, retval, a
    /// defaultValue, an allowedValueRange, a comment, indentation.
    static GUPNP: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?>
<scpd xmlns="urn:schemas-upnp-org:service-1-0">
  <specVersion>
    <major>1</major>
    <minor>0</minor>
  </specVersion>
  <actionList>
    <action>
      <name>SetTarget</name>
      <argumentList>
        <argument>
          <name>NewTargetValue</name>
          <relatedStateVariable>Target</relatedStateVariable>
          <direction>in</direction>
        </argument>
      </argumentList>
    </action>
    <action>
      <name>GetStatus</name>
      <argumentList>
        <argument>
          <name>ResultStatus</name>
          <direction>out</direction>
          <retval/>
          <relatedStateVariable>Status</relatedStateVariable>
        </argument>
      </argumentList>
    </action>
    <action><name>Reset</name></action>
  </actionList>
  <serviceStateTable>
    <!-- the switch -->
    <stateVariable sendEvents="no">
      <name>Target</name>
      <dataType>boolean</dataType>
      <defaultValue>0</defaultValue>
    </stateVariable>
    <stateVariable>
      <name>Status</name>
      <dataType>boolean</dataType>
    </stateVariable>
    <stateVariable sendEvents="yes" multicast="no">
      <name>Mode</name>
      <dataType>string</dataType>
      <allowedValueList>
        <allowedValue>Auto</allowedValue>
        <allowedValue>Manual</allowedValue>
      </allowedValueList>
    </stateVariable>
    <stateVariable sendEvents="no">
      <name>Level</name>
      <dataType>ui1</dataType>
      <allowedValueRange><minimum>0</minimum><maximum>100</maximum><step>1</step></allowedValueRange>
    </stateVariable>
  </serviceStateTable>
</scpd>"#;

    /// With xenplug's annotation, another vendor's element, a prefixed UPnP namespace.
    static SEMANTIC: &[u8] = br#"<u:scpd xmlns:u="urn:schemas-upnp-org:service-1-0" xmlns:x="urn:xenplug-org:schemas-1-0" xmlns:acme="urn:acme-com:x">
<acme:note>ignored <acme:deep/></acme:note>
<u:actionList>
<u:action><u:name>Wipe</u:name><x:semantics> destructive  confirm </x:semantics><acme:hint>y</acme:hint></u:action>
<u:action><u:name>Ping</u:name><x:semantics>idempotent</x:semantics></u:action>
</u:actionList>
<u:serviceStateTable><u:stateVariable sendEvents="no"><u:name>A_ARG_TYPE_X</u:name><u:dataType>string</u:dataType></u:stateVariable></u:serviceStateTable>
</u:scpd>"#;

    fn parse(bytes: &[u8]) -> Result<ServiceSpec> {
        parse_scpd(bytes, "Backup", TYPE, ID)
    }

    fn render(spec: &ServiceSpec) -> Vec<u8> {
        let mut out = Vec::new();
        render_scpd(spec, 7, &mut out).unwrap();
        out
    }

    /// A small valid SCPD with `action` (the inside of one action element) and `variables`
    /// (stateVariable elements) put in.
    fn with(action: &str, variables: &str) -> Vec<u8> {
        format!(
            r#"<scpd xmlns="urn:schemas-upnp-org:service-1-0" xmlns:xenplug="urn:xenplug-org:schemas-1-0"><actionList><action>{action}</action></actionList><serviceStateTable><stateVariable><name>V</name><dataType>string</dataType></stateVariable>{variables}</serviceStateTable></scpd>"#
        )
        .into_bytes()
    }

    fn argument(name: &str, direction: &str, variable: &str) -> String {
        format!("<argument><name>{name}</name><direction>{direction}</direction><relatedStateVariable>{variable}</relatedStateVariable></argument>")
    }

    fn variable(name: &str, data_type: &str) -> String {
        format!("<stateVariable sendEvents=\"no\"><name>{name}</name><dataType>{data_type}</dataType></stateVariable>")
    }

    fn refused(bytes: &[u8], expected: &str) {
        match parse(bytes) {
            Ok(spec) => panic!("accepted, wanted {expected:?}: {spec:?}"),
            Err(error) => assert!(
                error.reason().contains(expected),
                "{:?} does not contain {expected:?}",
                error.reason()
            ),
        }
    }

    #[test]
    fn parses_a_gupnp_style_scpd() {
        let spec = parse(GUPNP).unwrap();
        let expected = ServiceSpec::new("Backup", TYPE, ID)
            .action("SetTarget", &[("NewTargetValue", In, "Target")], &[])
            .action("GetStatus", &[("ResultStatus", Out, "Status")], &[])
            .action("Reset", &[], &[])
            .variable("Target", "boolean", false, &[])
            .variable("Status", "boolean", true, &[])
            .variable("Mode", "string", true, &["Auto", "Manual"])
            .variable("Level", "ui1", false, &[]);
        assert_eq!(spec, expected);
    }

    #[test]
    fn parses_semantics_and_skips_other_vendors() {
        let spec = parse(SEMANTIC).unwrap();
        let expected = ServiceSpec::new("Backup", TYPE, ID)
            .action("Wipe", &[], &[Semantic::Destructive, Semantic::Confirm])
            .action("Ping", &[], &[Semantic::Idempotent])
            .variable("A_ARG_TYPE_X", "string", false, &[]);
        assert_eq!(spec, expected);
    }

    #[test]
    fn round_trips_through_render_scpd() {
        for fixture in [GUPNP, SEMANTIC] {
            let spec = parse(fixture).unwrap();
            let rendered = render(&spec);
            assert_eq!(parse(&rendered).unwrap(), spec);
        }
        // xenplug's own services are valid owner SCPDs too.
        for own in [&*HYPERVISOR_SERVICE, &*DOMAIN_CONTROL_SERVICE] {
            let parsed =
                parse_scpd(&render(own), &own.name, &own.service_type, &own.service_id).unwrap();
            // Read-only marks are not published: a parsed action is never read-only.
            let mut unmarked = (**own).clone();
            for action in &mut unmarked.actions {
                action.read_only = false;
            }
            assert_eq!(parsed, unmarked);
        }
    }

    #[test]
    fn accepts_a_byte_order_mark_and_no_action_list() {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(
            br#"<scpd xmlns="urn:schemas-upnp-org:service-1-0"><serviceStateTable><stateVariable><name>S</name><dataType>ui4</dataType></stateVariable></serviceStateTable></scpd>"#,
        );
        let spec = parse(&bytes).unwrap();
        assert!(spec.actions.is_empty());
        assert_eq!(spec.variables.len(), 1);
        assert!(spec.variables[0].evented);
    }

    #[test]
    fn refuses_the_wrong_root() {
        refused(
            br#"<scpd><serviceStateTable/></scpd>"#,
            "root element is not scpd",
        );
        refused(
            br#"<root xmlns="urn:schemas-upnp-org:service-1-0"/>"#,
            "root element is not scpd",
        );
        refused(
            br#"<scpd xmlns="urn:schemas-upnp-org:device-1-0"/>"#,
            "root element is not scpd",
        );
        refused(
            br#"<scpd xmlns="urn:schemas-upnp-org:service-1-0"/>"#,
            "serviceStateTable is missing",
        );
        refused(
            br#"<scpd xmlns="urn:schemas-upnp-org:service-1-0"><serviceStateTable/></scpd>"#,
            "declares no stateVariable",
        );
        refused(
            br#"<scpd xmlns="urn:schemas-upnp-org:service-1-0"><serviceStateTable><stateVariable><name>S</name><dataType>ui4</dataType></stateVariable></serviceStateTable><serviceStateTable/></scpd>"#,
            "serviceStateTable is given more than once",
        );
    }

    #[test]
    fn refuses_bad_names() {
        let cases: [(&str, &str); 7] = [
            ("", "\"\": the name is empty"),
            ("9Lives", "\"9Lives\": the name starts with a digit"),
            ("Set-Value", "\"Set-Value\": the name may hold only"),
            ("Grüße", "the name may hold only"),
            ("A B", "the name may hold only"),
            (
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "longer than 64 bytes",
            ),
            ("<x/>", "name must hold text"),
        ];
        for (name, expected) in cases {
            refused(&with(&format!("<name>{name}</name>"), ""), expected);
            refused(
                &with(
                    &format!(
                        "<name>A</name><argumentList>{}</argumentList>",
                        argument(name, "in", "V")
                    ),
                    "",
                ),
                expected,
            );
            refused(&with("<name>A</name>", &variable(name, "string")), expected);
        }
        refused(
            &with("<name>Set-Value</name>", ""),
            "action \"Set-Value\": the name may hold only A-Z, a-z, 0-9 and _",
        );
        refused(
            &with(
                &format!(
                    "<name>A</name><argumentList>{}</argumentList>",
                    argument("9", "in", "V")
                ),
                "",
            ),
            "action \"A\": argument \"9\": the name starts with a digit",
        );
        refused(
            &with("<name>A</name>", &variable("", "string")),
            "state variable \"\": the name is empty",
        );
        refused(
            &with("<name><x/></name>", ""),
            "action 1: name must hold text, not elements",
        );
        // 64 bytes is still fine, and the underscore and inner digits too.
        let long = "A".repeat(64);
        assert!(parse(&with(&format!("<name>{long}</name>"), "")).is_ok());
        assert!(parse(&with("<name>_Get_2</name>", "")).is_ok());
        refused(&with("", ""), "action 1: name is missing");
        refused(
            &with("<name>A</name><name>B</name>", ""),
            "action 1: name is given more than once",
        );
    }

    #[test]
    fn refuses_duplicates_and_the_reserved_argument() {
        refused(
            &format!(
                r#"<scpd xmlns="urn:schemas-upnp-org:service-1-0"><actionList><action><name>A</name></action><action><name>A</name></action></actionList><serviceStateTable>{}</serviceStateTable></scpd>"#,
                variable("V", "string")
            )
            .into_bytes(),
            "action \"A\" is declared twice",
        );
        refused(
            &with("<name>A</name>", &variable("V", "ui4")),
            "state variable \"V\" is declared twice",
        );
        refused(
            &with(
                &format!(
                    "<name>A</name><argumentList>{}{}</argumentList>",
                    argument("X", "in", "V"),
                    argument("X", "in", "V")
                ),
                "",
            ),
            "action \"A\": argument \"X\" is declared twice",
        );
        refused(
            &with(
                &format!(
                    "<name>A</name><argumentList>{}</argumentList>",
                    argument("UPnPError", "out", "V")
                ),
                "",
            ),
            "argument \"UPnPError\": the name is reserved",
        );
    }

    #[test]
    fn refuses_bad_arguments() {
        let one = |argument: String| {
            with(
                &format!("<name>A</name><argumentList>{argument}</argumentList>"),
                "",
            )
        };
        refused(
            &one(argument("X", "inout", "V")),
            "action \"A\": argument \"X\": direction is \"inout\", not in or out",
        );
        refused(&one(argument("X", "IN", "V")), "direction is \"IN\"");
        refused(
            &one(argument("X", "in", "Missing")),
            "argument \"X\": relatedStateVariable \"Missing\" is not in serviceStateTable",
        );
        refused(
            &one(
                "<argument><name>X</name><relatedStateVariable>V</relatedStateVariable></argument>"
                    .into(),
            ),
            "argument \"X\": direction is missing",
        );
        refused(
            &one("<argument><name>X</name><direction>in</direction></argument>".into()),
            "argument \"X\": relatedStateVariable is missing",
        );
        refused(
            &with(
                &format!(
                    "<name>A</name><argumentList>{}{}</argumentList>",
                    argument("Out1", "out", "V"),
                    argument("In1", "in", "V")
                ),
                "",
            ),
            "argument \"In1\": an in-argument after an out-argument",
        );
        refused(
            &with("<name>A</name><argumentList/><argumentList/>", ""),
            "action \"A\": argumentList is given more than once",
        );
    }

    #[test]
    fn refuses_bad_variables() {
        refused(
            &with("<name>A</name>", &variable("W", "ui8")),
            "state variable \"W\": dataType \"ui8\" is not a UDA 1.1 data type",
        );
        refused(
            &with("<name>A</name>", &variable("W", "String")),
            "dataType \"String\"",
        );
        refused(
            &with(
                "<name>A</name>",
                "<stateVariable sendEvents=\"true\"><name>W</name><dataType>string</dataType></stateVariable>",
            ),
            "state variable \"W\": sendEvents is \"true\", not yes or no",
        );
        refused(
            &with(
                "<name>A</name>",
                "<stateVariable><name>W</name></stateVariable>",
            ),
            "state variable \"W\": dataType is missing",
        );
        refused(
            &with(
                "<name>A</name>",
                "<stateVariable><name>W</name><dataType>string</dataType><allowedValueList><allowedValue><b/></allowedValue></allowedValueList></stateVariable>",
            ),
            "state variable \"W\": allowedValue must hold text",
        );
        for data_type in UPNP_DATA_TYPES {
            assert!(parse(&with("<name>A</name>", &variable("W", data_type))).is_ok());
        }
    }

    #[test]
    fn refuses_too_many() {
        let actions: String = (0..=SCPD_MAX_ACTIONS)
            .map(|i| format!("<action><name>A{i}</name></action>"))
            .collect();
        refused(
            &format!(
                r#"<scpd xmlns="urn:schemas-upnp-org:service-1-0"><actionList>{actions}</actionList><serviceStateTable>{}</serviceStateTable></scpd>"#,
                variable("V", "string")
            )
            .into_bytes(),
            "more than 64 actions",
        );
        let arguments: String = (0..=SCPD_MAX_ARGUMENTS)
            .map(|i| argument(&format!("X{i}"), "in", "V"))
            .collect();
        refused(
            &with(
                &format!("<name>A</name><argumentList>{arguments}</argumentList>"),
                "",
            ),
            "action \"A\": more than 32 arguments",
        );
        let variables: String = (1..SCPD_MAX_VARIABLES)
            .map(|i| variable(&format!("V{i}"), "string"))
            .collect();
        assert!(parse(&with("<name>A</name>", &variables)).is_ok());
        refused(
            &with("<name>A</name>", &(variables + &variable("Last", "string"))),
            "more than 128 state variables",
        );
    }

    #[test]
    fn refuses_bad_semantics() {
        refused(
            &with(
                "<name>A</name><xenplug:semantics>destructive risky</xenplug:semantics>",
                "",
            ),
            "action \"A\": semantics token \"risky\" is not one of",
        );
        refused(
            &with(
                "<name>A</name><xenplug:semantics>Confirm</xenplug:semantics>",
                "",
            ),
            "token \"Confirm\"",
        );
        refused(
            &with(
                "<name>A</name><xenplug:semantics>confirm confirm</xenplug:semantics>",
                "",
            ),
            "token confirm is given twice",
        );
        refused(
            &with(
                "<name>A</name><xenplug:semantics>confirm</xenplug:semantics><xenplug:semantics/>",
                "",
            ),
            "action \"A\": semantics is given more than once",
        );
        refused(
            &with(
                "<name>A</name><xenplug:semantic>confirm</xenplug:semantic>",
                "",
            ),
            "unknown element \"semantic\" in namespace urn:xenplug-org:schemas-1-0",
        );
        refused(
            &with("<name>A</name><argumentList><xenplug:semantics>confirm</xenplug:semantics></argumentList>", ""),
            "allowed only inside an action",
        );
        refused(
            &with("<name>A</name>", "<xenplug:vmUuid>x</xenplug:vmUuid>"),
            "unknown element \"vmUuid\"",
        );
        let spec = parse(&with("<name>A</name><xenplug:semantics/>", "")).unwrap();
        assert!(spec.actions[0].semantics.is_empty());
    }

    #[test]
    fn refuses_hostile_xml() {
        refused(
            b"<?xml version=\"1.0\"?><!DOCTYPE scpd [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">&b;</scpd>",
            "document type declaration",
        );
        let mut deep = br#"<scpd xmlns="urn:schemas-upnp-org:service-1-0">"#.to_vec();
        for _ in 0..SCPD_MAX_DEPTH {
            deep.extend_from_slice(b"<x>");
        }
        refused(&deep, "nested deeper than 16");
        let mut huge = with("<name>A</name>", "");
        let padding = vec![b' '; SCPD_MAX_BYTES];
        huge.splice(6..6, padding);
        refused(&huge, "larger than 65536 bytes");
        // Two nodes in five bytes: over the node limit well within the size limit.
        let wide: String = (0..SCPD_MAX_NODES / 2 + 8).map(|_| "<a/>x").collect();
        assert!(wide.len() < SCPD_MAX_BYTES);
        refused(
            &format!(r#"<scpd xmlns="urn:schemas-upnp-org:service-1-0">{wide}</scpd>"#)
                .into_bytes(),
            "more than 16384 XML nodes",
        );
        refused(b"\xff\xfe<scpd/>", "not well-formed XML");
        refused(b"<scpd><a></scpd>", "not well-formed XML");
        refused(
            br#"<scpd xmlns="urn:schemas-upnp-org:service-1-0"><actionList>"#,
            "ends before the document does",
        );
        refused(b"", "not well-formed XML");
    }

    #[test]
    fn every_truncated_prefix_is_refused() {
        for fixture in [GUPNP, SEMANTIC] {
            for end in 0..fixture.len() {
                assert!(parse(&fixture[..end]).is_err(), "prefix {end}");
            }
        }
        let rendered = render(&parse(SEMANTIC).unwrap());
        let close = rendered.len() - b"\n".len();
        for end in 0..close {
            assert!(parse(&rendered[..end]).is_err(), "prefix {end}");
        }
    }
}
