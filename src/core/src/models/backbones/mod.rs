//! ImageNet / face-recognition backbones, laid out like their PyTorch
//! reference implementations so that those checkpoints import.

pub mod efficientnet;
pub mod inception;
pub mod iresnet;
pub mod resnet;
