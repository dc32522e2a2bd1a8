//! The committed fusion models carry no subnormal float weights: on x86 each
//! multiplication by one costs many times a normal one (`train.py` sets
//! them to 0 when it exports). The ONNX files are read at the protobuf wire
//! level: ModelProto.graph (7) -> GraphProto.initializer (5) -> TensorProto
//! data_type (2), float_data (4), raw_data (9).

use std::path::Path;

#[derive(Debug)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
    Fixed64,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// The fields of one protobuf message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Value<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => Value::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|e| e.to_string())?;
                let end = pos.checked_add(len).ok_or("length overflow")?;
                let bytes = buf.get(pos..end).ok_or("truncated field")?;
                pos = end;
                Value::Bytes(bytes)
            }
            5 => {
                let b = buf.get(pos..pos + 4).ok_or("truncated fixed32")?;
                pos += 4;
                Value::Fixed32([b[0], b[1], b[2], b[3]])
            }
            w => return Err(format!("wire type {w} not expected")),
        };
        out.push((field, value));
    }
    if pos != buf.len() {
        return Err("truncated message".into());
    }
    Ok(out)
}

const FLOAT: u64 = 1;

/// (float values read, subnormal values found) over the model's float
/// initializers.
fn float_initializers(model: &[u8]) -> Result<(usize, usize), String> {
    let mut seen = 0;
    let mut subnormal = 0;
    let mut check = |x: f32| {
        seen += 1;
        if x.is_subnormal() {
            subnormal += 1;
        }
    };
    for (f, graph) in fields(model)? {
        let (7, Value::Bytes(graph)) = (f, graph) else {
            continue;
        };
        for (f, tensor) in fields(graph)? {
            let (5, Value::Bytes(tensor)) = (f, tensor) else {
                continue;
            };
            let tf = fields(tensor)?;
            let is_float = tf
                .iter()
                .any(|(f, v)| *f == 2 && matches!(v, Value::Varint(FLOAT)));
            if !is_float {
                continue;
            }
            for (f, v) in &tf {
                match (f, v) {
                    (4 | 9, Value::Bytes(b)) => {
                        if b.len() % 4 != 0 {
                            return Err("float data not a whole number of floats".into());
                        }
                        for c in b.chunks_exact(4) {
                            check(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                        }
                    }
                    (4, Value::Fixed32(b)) => check(f32::from_le_bytes(*b)),
                    _ => {}
                }
            }
        }
    }
    Ok((seen, subnormal))
}

fn committed(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fusion")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_committed_models_have_no_subnormal_float_weights() {
    // The float graph's weights are all float; the 4-bit graph keeps its
    // scales, biases and the small layers in float.
    for (name, at_least) in [("fusion.float.onnx", 300_000), ("fusion.int4.onnx", 10_000)] {
        let (seen, subnormal) =
            float_initializers(&committed(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(seen >= at_least, "{name}: only {seen} float weights read");
        assert_eq!(subnormal, 0, "{name}: {subnormal} subnormal of {seen}");
    }
}

/// A model of one float initializer holding `values` as raw data.
fn tiny_model(values: &[f32]) -> Vec<u8> {
    fn len_field(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![field << 3 | 2];
        let mut n = bytes.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(bytes);
        out
    }
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut tensor = vec![2 << 3, FLOAT as u8];
    tensor.extend(len_field(9, &raw));
    let graph = len_field(5, &tensor);
    len_field(7, &graph)
}

#[test]
fn the_reader_finds_a_subnormal_and_refuses_a_truncated_file() {
    let model = tiny_model(&[1.0, 1e-40, 0.0, -2.5]);
    assert_eq!(float_initializers(&model), Ok((4, 1)));
    assert_eq!(float_initializers(&tiny_model(&[1.0, 0.0])), Ok((2, 0)));
    assert!(float_initializers(&model[..model.len() - 3]).is_err());
}
