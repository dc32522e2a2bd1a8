//! The accelerator interface, shaped for bursts: wake, run batches, release.
//!
//! ONNX Runtime on the CPU ([`OrtBackend`](super::OrtBackend)) is the only
//! implementation today. A HailoRT backend for the Raspberry Pi AI HAT+ 2
//! (Hailo-10H) would implement the same trait: `wake` would open the device
//! (one process owns it) and configure the network group from a HEF file
//! compiled from the same model, `run` would write the batch to the input
//! virtual streams and read the output streams, and `release` would close the
//! network group and the device so the module can power down between bursts.
//! Its inputs and outputs would be checked against the same [`IoSpec`]s
//! taken from the model's manifest, so the node's code does not change.
//!
//! [`IoSpec`]: super::IoSpec

use super::error::InferError;
use super::tensor::NamedTensors;

/// Something that runs a model on batches, woken for a burst and released
/// when idle. Implementations do no work when asleep.
pub trait Accelerator: Send {
    /// A short name for logs and status (`onnxruntime-cpu`).
    fn name(&self) -> &'static str;

    /// Makes the accelerator ready to run: loads the model, creates the
    /// session, checks its inputs and outputs. A no-op when already awake.
    fn wake(&mut self) -> Result<(), InferError>;

    /// Whether [`wake`](Self::wake) has succeeded and
    /// [`release`](Self::release) has not been called since.
    fn is_awake(&self) -> bool;

    /// Runs one batch: every specified input, batch first; returns every
    /// specified output with the same batch size. Needs the accelerator awake.
    fn run(&mut self, inputs: &NamedTensors) -> Result<NamedTensors, InferError>;

    /// Frees the session and everything it holds. A no-op when asleep.
    fn release(&mut self);
}
