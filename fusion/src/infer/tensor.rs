//! Named `f32` tensors with the batch as their first dimension, and the
//! specification a model's inputs and outputs are checked against.

use ndarray::{Array, ArrayD, ArrayViewD, Axis, Dimension, IxDyn};

use super::error::InferError;

/// Element type of a tensor. Only `float32` is supported: the node's models
/// take features and return probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// 32-bit float (`float32` in a manifest).
    Float32,
}

impl ElementType {
    /// Parses a manifest's element type name (`float32` or `f32`).
    pub fn parse(name: &str) -> Result<ElementType, InferError> {
        match name {
            "float32" | "f32" => Ok(ElementType::Float32),
            other => Err(InferError::Config(format!(
                "element type `{other}` is not supported (only float32)"
            ))),
        }
    }

    /// The manifest's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            ElementType::Float32 => "float32",
        }
    }
}

/// What one model input or output must be: its name, element type and
/// shape, with `-1` for the batch (first) dimension and fixed positive sizes
/// for the others. The node fills these from the model's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// Name in the ONNX graph.
    pub name: String,
    /// Element type.
    pub dtype: ElementType,
    /// Shape: `[-1, d1, d2, ...]`.
    pub shape: Vec<i64>,
}

impl IoSpec {
    /// Builds and checks a spec from a manifest's strings.
    pub fn new(name: &str, dtype: &str, shape: &[i64]) -> Result<IoSpec, InferError> {
        let spec = IoSpec {
            name: name.to_string(),
            dtype: ElementType::parse(dtype)?,
            shape: shape.to_vec(),
        };
        spec.check()?;
        Ok(spec)
    }

    /// A `float32` spec (`shape` includes the leading `-1`).
    pub fn f32(name: &str, shape: &[i64]) -> Result<IoSpec, InferError> {
        IoSpec::new(name, "float32", shape)
    }

    /// Checks the name and the shape rules.
    pub fn check(&self) -> Result<(), InferError> {
        let bad = |why: &str| Err(InferError::Config(format!("tensor `{}`: {why}", self.name)));
        if self.name.is_empty() {
            return bad("the name is empty");
        }
        match self.shape.split_first() {
            None => bad("the shape is empty"),
            Some((&first, _)) if first != -1 => bad("the first (batch) dimension must be -1"),
            Some((_, rest)) if rest.iter().any(|&d| d <= 0) => {
                bad("dimensions after the batch must be positive")
            }
            Some(_) => Ok(()),
        }
    }

    /// Elements in one batch row (the product of the fixed dimensions).
    pub fn row_len(&self) -> usize {
        self.shape[1..].iter().map(|&d| d as usize).product()
    }
}

/// A dense row-major `f32` tensor whose first dimension is the batch: an
/// [`ndarray`] array in standard layout with at least one dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorF32 {
    array: ArrayD<f32>,
}

impl TensorF32 {
    /// A tensor of `shape` holding `data` (row-major); the lengths must agree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<TensorF32, InferError> {
        let len = data.len();
        let array = ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| {
            InferError::BadInput(format!("shape {shape:?} cannot hold {len} values: {e}"))
        })?;
        TensorF32::from_array(array)
    }

    /// A `[rows, cols]` matrix.
    pub fn matrix(rows: usize, cols: usize, data: Vec<f32>) -> Result<TensorF32, InferError> {
        TensorF32::new(vec![rows, cols], data)
    }

    /// A tensor holding `array` (copied into row-major order if it is not).
    pub fn from_array<D: Dimension>(array: Array<f32, D>) -> Result<TensorF32, InferError> {
        if array.ndim() == 0 {
            return Err(InferError::BadInput(
                "a tensor needs at least one dimension".into(),
            ));
        }
        let array = if array.is_standard_layout() {
            array.into_dyn()
        } else {
            array.as_standard_layout().into_owned().into_dyn()
        };
        Ok(TensorF32 { array })
    }

    /// The values as an array view.
    pub fn view(&self) -> ArrayViewD<'_, f32> {
        self.array.view()
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.array.shape()
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        // Always `Some`: every constructor keeps the standard layout.
        self.array.as_slice().unwrap_or_default()
    }

    /// The batch size (first dimension).
    pub fn rows(&self) -> usize {
        self.array.len_of(Axis(0))
    }

    /// Elements per batch row.
    pub fn row_len(&self) -> usize {
        self.array.shape()[1..].iter().product()
    }

    /// Row `i` of the batch, if it exists.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        if i >= self.rows() {
            return None;
        }
        let n = self.row_len();
        self.data().get(i * n..(i + 1) * n)
    }
}

/// Tensors by name, in insertion order: a model's inputs or its outputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedTensors {
    items: Vec<(String, TensorF32)>,
}

impl NamedTensors {
    /// No tensors.
    pub fn new() -> NamedTensors {
        NamedTensors::default()
    }

    /// Adds or replaces the tensor called `name`.
    pub fn insert(&mut self, name: &str, tensor: TensorF32) {
        match self.items.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t = tensor,
            None => self.items.push((name.to_string(), tensor)),
        }
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, name: &str, tensor: TensorF32) -> NamedTensors {
        self.insert(name, tensor);
        self
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&TensorF32> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Names and tensors, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TensorF32)> {
        self.items.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// How many tensors.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The common batch size, if every tensor has the same one.
    pub fn rows(&self) -> Option<usize> {
        let mut it = self.items.iter().map(|(_, t)| t.rows());
        let first = it.next()?;
        it.all(|r| r == first).then_some(first)
    }

    /// Checks these tensors against `specs`: exactly the specified names,
    /// each with the specified non-batch dimensions, all with one batch size
    /// of at least 1. Returns the batch size.
    pub fn check_against(&self, specs: &[IoSpec]) -> Result<usize, InferError> {
        let mut problems = Vec::new();
        for spec in specs {
            match self.get(&spec.name) {
                None => problems.push(format!("missing `{}`", spec.name)),
                Some(t) => {
                    let want: Vec<i64> = spec.shape[1..].to_vec();
                    let got: Vec<i64> = t.shape()[1..].iter().map(|&d| d as i64).collect();
                    if want != got {
                        problems.push(format!(
                            "`{}` has shape {:?}, expected [batch, {}]",
                            spec.name,
                            t.shape(),
                            want.iter()
                                .map(|d| d.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
        }
        for (name, _) in self.iter() {
            if !specs.iter().any(|s| s.name == name) {
                problems.push(format!("unexpected `{name}`"));
            }
        }
        if !problems.is_empty() {
            return Err(InferError::BadInput(problems.join("; ")));
        }
        match self.rows() {
            Some(0) => Err(InferError::BadInput("the batch is empty".into())),
            Some(rows) => Ok(rows),
            None if self.is_empty() => Err(InferError::BadInput("no tensors".into())),
            None => Err(InferError::BadInput(format!(
                "tensors disagree on the batch size: {}",
                self.iter()
                    .map(|(n, t)| format!("{n}={}", t.rows()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_rules() {
        assert!(IoSpec::f32("x", &[-1, 4]).is_ok());
        assert!(IoSpec::f32("x", &[4, 4]).is_err());
        assert!(IoSpec::f32("x", &[-1, -1]).is_err());
        assert!(IoSpec::f32("x", &[]).is_err());
        assert!(IoSpec::f32("", &[-1, 2]).is_err());
        assert!(IoSpec::new("x", "int8", &[-1, 2]).is_err());
        assert_eq!(IoSpec::f32("x", &[-1, 4, 8]).unwrap().row_len(), 32);
    }

    #[test]
    fn tensor_shape_must_match_data() {
        assert!(TensorF32::matrix(2, 3, vec![0.0; 6]).is_ok());
        assert!(TensorF32::matrix(2, 3, vec![0.0; 5]).is_err());
        assert!(TensorF32::new(vec![usize::MAX, 3], vec![]).is_err());
        assert!(TensorF32::new(vec![], vec![]).is_err());
        let t = TensorF32::matrix(2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(t.row(1), Some(&[3.0, 4.0][..]));
        assert_eq!(t.row(2), None);
    }

    #[test]
    fn inputs_are_checked_against_specs() {
        let specs = [
            IoSpec::f32("a", &[-1, 2]).unwrap(),
            IoSpec::f32("m", &[-1, 3]).unwrap(),
        ];
        let good = NamedTensors::new()
            .with("a", TensorF32::matrix(4, 2, vec![0.0; 8]).unwrap())
            .with("m", TensorF32::matrix(4, 3, vec![0.0; 12]).unwrap());
        assert_eq!(good.check_against(&specs).unwrap(), 4);

        let cases = [
            good.clone()
                .with("a", TensorF32::matrix(4, 3, vec![0.0; 12]).unwrap()),
            good.clone()
                .with("m", TensorF32::matrix(3, 3, vec![0.0; 9]).unwrap()),
            good.clone()
                .with("extra", TensorF32::matrix(4, 1, vec![0.0; 4]).unwrap()),
            NamedTensors::new().with("a", TensorF32::matrix(4, 2, vec![0.0; 8]).unwrap()),
            NamedTensors::new()
                .with("a", TensorF32::matrix(0, 2, vec![]).unwrap())
                .with("m", TensorF32::matrix(0, 3, vec![]).unwrap()),
        ];
        for bad in cases {
            assert!(
                matches!(bad.check_against(&specs), Err(InferError::BadInput(_))),
                "{bad:?}"
            );
        }
    }
}
