"""The config.json MindIE Service reads (``MIES_CONFIG_JSON_PATH``), for one replica.

MindIE takes its address, ports, devices and model from this file rather than from flags.
Only what the pool decides is set here (service, management and metrics ports on 127.0.0.1,
the replica's devices — logical ids after ``ASCEND_RT_VISIBLE_DEVICES`` —, the served name,
the weights' path and the world size); MindIE's own defaults fill the rest. Written from
MindIE's published schema; not run against a MindIE installation here.
"""

from __future__ import annotations

from collections.abc import Mapping


def mindie_config(v: Mapping[str, object]) -> dict:
    tp = int(str(v["tp"]))
    return {
        "Version": "1.0.0",
        "ServerConfig": {
            "ipAddress": str(v["host"]),
            "managementIpAddress": str(v["host"]),
            "port": int(str(v["port"])),
            "managementPort": int(str(v["port1"])),
            "metricsPort": int(str(v["port2"])),
            "httpsEnabled": False,
        },
        "BackendConfig": {
            "npuDeviceIds": [list(range(tp))],
            "multiNodesInferEnabled": False,
            "ModelDeployConfig": {
                "ModelConfig": [
                    {
                        "modelName": str(v["name"]),
                        "modelWeightPath": str(v["model_path"]),
                        "worldSize": tp,
                        "backendType": "atb",
                    }
                ]
            },
        },
    }
