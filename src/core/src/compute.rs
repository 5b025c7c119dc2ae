//! Choosing the compute device: burn on wgpu when a GPU is usable, else Flex (CPU).

use burn::tensor::Device;
use burn::tensor::wgpu::{WgpuSetup, wgpu};

use crate::error::CoreError;

/// What the user asked for (`--device auto|wgpu|cpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// wgpu on a hardware adapter; Flex when there is none. A software
    /// adapter (lavapipe) counts as none: Flex is faster on the same CPU.
    #[default]
    Auto,
    /// wgpu on whatever adapter wgpu picks, software adapters included.
    Wgpu,
    Cpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "cpu" | "flex" => Ok(Self::Cpu),
            other => Err(format!("unknown device {other:?} (auto, wgpu or cpu)")),
        }
    }
}

/// The device models run on, with a human-readable name for the status bar.
#[derive(Clone)]
pub struct Compute {
    pub device: Device,
    pub name: String,
    /// The wgpu handles registered with burn, for the GUI to render through;
    /// present even when models run on the CPU because the adapter is software.
    pub wgpu: Option<WgpuSetup>,
    /// Why Auto chose the CPU, if it did.
    pub fallback_reason: Option<String>,
    /// `device` is the wgpu one in `wgpu` (not Flex).
    on_gpu: bool,
}

impl std::fmt::Debug for Compute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compute").field("name", &self.name).finish()
    }
}

impl Compute {
    fn cpu(wgpu: Option<WgpuSetup>, fallback_reason: Option<String>) -> Self {
        Compute {
            device: Device::flex(),
            name: "CPU (burn Flex)".into(),
            wgpu,
            fallback_reason,
            on_gpu: false,
        }
    }

    /// Create the device. Registers a wgpu runtime with burn: call once per
    /// process and clone the result.
    pub fn init(choice: DeviceChoice) -> Result<Self, CoreError> {
        if choice == DeviceChoice::Cpu {
            return Ok(Self::cpu(None, None));
        }
        match Device::wgpu_options().init_with_setup() {
            Ok((device, setup)) => {
                let info = setup.adapter.get_info();
                if info.device_type == wgpu::DeviceType::Cpu && choice == DeviceChoice::Auto {
                    let reason = format!("only a software GPU adapter ({})", info.name);
                    return Ok(Self::cpu(Some(setup), Some(reason)));
                }
                Ok(Compute {
                    device,
                    name: format!("GPU: {} ({:?}, burn wgpu)", info.name, info.backend),
                    wgpu: Some(setup),
                    fallback_reason: None,
                    on_gpu: true,
                })
            }
            Err(e) if choice == DeviceChoice::Auto => {
                Ok(Self::cpu(None, Some(format!("no usable GPU adapter: {e}"))))
            }
            Err(e) => Err(CoreError::Device(format!("wgpu unavailable: {e}"))),
        }
    }

    /// The wgpu device the models run on; None when they run on the CPU
    /// (even if a software adapter was set up for rendering).
    pub fn gpu_device(&self) -> Option<&wgpu::Device> {
        self.wgpu.as_ref().filter(|_| self.on_gpu).map(|s| &s.device)
    }

    /// One line for a status bar: the device, and why it is not a GPU when it is not.
    pub fn status_line(&self) -> String {
        match &self.fallback_reason {
            Some(why) => format!("{} — {why}", self.name),
            None => self.name.clone(),
        }
    }
}
