//! Parameter bookkeeping over any module: counting, freezing, fresh identities.

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

/// Where a visitor is in the module tree; BatchNorm running statistics are visited like
/// parameters but are buffers (never trained, not counted).
#[derive(Debug, Default)]
pub struct VisitPath(Vec<String>);

impl VisitPath {
    pub fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }

    pub fn exit(&mut self) {
        self.0.pop();
    }

    pub fn in_buffer(&self) -> bool {
        self.0.last().is_some_and(|n| n == "running_mean" || n == "running_var")
    }
}

/// Number of trainable-kind float parameters (scalars) in `module`, buffers excluded.
pub fn count<B: Backend, M: Module<B>>(module: &M) -> usize {
    #[derive(Default)]
    struct Counter {
        path: VisitPath,
        total: usize,
    }
    impl<B: Backend> ModuleVisitor<B> for Counter {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if !self.path.in_buffer() {
                self.total += param.shape().num_elements();
            }
        }
    }
    let mut counter = Counter::default();
    module.visit(&mut counter);
    counter.total
}

/// Marks every float parameter of `module` as trained (`true`) or frozen (`false`).
pub fn set_trainable<B: Backend, M: Module<B>>(module: M, trainable: bool) -> M {
    struct Trainable(bool);
    impl<B: Backend> ModuleMapper<B> for Trainable {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            param.set_require_grad(self.0)
        }
    }
    module.map(&mut Trainable(trainable))
}

/// The same values under new parameter identities, for a module cloned from another (an
/// optimizer keys its state by identity, so two copies must not share one).
pub fn with_fresh_ids<B: Backend, M: Module<B>>(module: M) -> M {
    struct FreshIds;
    impl<B: Backend> ModuleMapper<B> for FreshIds {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (_, tensor, mapper) = param.consume();
            Param::from_mapped_value(ParamId::new(), tensor, mapper)
        }
    }
    module.map(&mut FreshIds)
}
