"""The services' previews beside the live view: the GUI side of ``[[services]] preview``.

A service entry (``collector.config.ServiceConfig``) names a Qt-free preview provider,
``"package.module:Class"``; it is loaded here by that name, so neither the core nor this window
imports a service. The provider is built as ``Class(endpoint, name=..., options=...,
unavailable_reason=...)`` (``endpoint`` is ``None`` when the service is not running, the reason
says why), offers ``state()`` and ``close()``, and names its Qt view in ``qt_view``
(``"package.module:QtClass"``, built as ``QtClass(provider)``). It may also offer
``trajectory(stream)``, a path to draw over a camera's image. A provider that cannot be loaded
costs only its panel, which says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from PySide6 import QtWidgets

from collector.config import ServiceConfig, load_entry_point
from collector.wire.options import ConfigError

log = logging.getLogger("ui.collect.previews")


@dataclass
class ServicePreview:
    """One service's preview: its provider (None if it could not be loaded) and its view."""

    service: str
    provider: Any
    view: QtWidgets.QWidget

    def close(self) -> None:
        self.view.close()
        if self.provider is not None:
            self.provider.close()


def open_previews(model) -> list[ServicePreview]:
    """A preview for each service of ``model.config`` that declares one (an opened
    :class:`~collector.recording.collect.CollectModel`)."""
    previews = []
    for service in model.config.services:
        if service.preview:
            endpoint, reason = model.service_endpoint(service.name) if service.enabled else \
                (None, f"the {service.name} service is off (enabled = false)")
            previews.append(_open_preview(service, endpoint, reason))
    return previews


def _open_preview(service: ServiceConfig, endpoint: str | None, reason: str) -> ServicePreview:
    provider = None
    try:
        provider_class = load_entry_point(service.preview)
        provider = provider_class(endpoint, name=service.name, options=dict(service.options),
                                  unavailable_reason=reason)
        view_class = load_entry_point(provider.qt_view)
        return ServicePreview(service.name, provider, view_class(provider))
    except (ConfigError, AttributeError, TypeError, ValueError) as exc:
        log.warning("no preview for service %s: %s", service.name, exc)
        if provider is not None:
            provider.close()
        label = QtWidgets.QLabel(f"Preview of {service.name} unavailable: {exc}")
        label.setObjectName("dim")
        label.setWordWrap(True)
        return ServicePreview(service.name, None, label)
