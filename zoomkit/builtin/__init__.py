"""The paper's components, registered as ordinary plugins (see `zoomkit.plugins.BUILTIN_PLUGINS`)."""
