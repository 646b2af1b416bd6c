"""Pure logic on the standard library: manifests, versions, lifecycle, registry, resolver, bus."""
