"""One loader per problem source; `rltf_jax.data.registry.load_problems` dispatches to them."""
