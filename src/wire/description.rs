//! Wire layer: device descriptions and SCPDs (UDA 1.1 sections 2.3 and 2.5) as bytes.
//!
//! Rendered once per model change into a kept buffer; serving copies those bytes. No I/O.

use super::xml::Sink;
use super::Result;
use crate::consts::{
    ELEMENT_SEMANTICS, ELEMENT_VM_UUID, MANUFACTURER, NS_DEVICE, NS_SERVICE, NS_XENPLUG, VERSION,
    XENPLUG_PREFIX,
};
use crate::model::{Device, Direction, ServiceSpec};

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

fn render_device(device: &Device, out: &mut impl Sink) -> Result<()> {
    out.put_str("<device>\n")?;
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
    out.put_str("</UDN>\n")?;
    if !device.services.is_empty() {
        out.put_str("<serviceList>\n")?;
        for service in &device.services {
            out.put_str("<service>")?;
            out.put_element("serviceType", &service.spec.service_type)?;
            out.put_element("serviceId", &service.spec.service_id)?;
            out.put_element("SCPDURL", &service.spec.scpd_url())?;
            out.put_element("controlURL", &service.control_url())?;
            out.put_element("eventSubURL", &service.event_url())?;
            out.put_str("</service>\n")?;
        }
        out.put_str("</serviceList>\n")?;
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
        out.put_str("\n")?;
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
