"""Publish targets: the internal mirrors teams scale on (Pulp 3, devpi). Each kind is registered under the
``mirrorctl.targets.v1`` entry-point group; :func:`mirrorctl.targets.base.make_target` builds one from settings."""
