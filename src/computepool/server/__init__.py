"""The live control plane: store, scheduler service, REST API."""
