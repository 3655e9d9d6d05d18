"""A rosbags type store that knows the vla_msgs interfaces, read from their own .msg files.

Bags written offline with rosbags and bags recorded by ROS must be interchangeable, so the types
are never re-declared in Python: they come from the installed interface definitions.
No ROS runtime is needed (the dataset and training code use this without rclpy).
"""

from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from vla_ros.install_paths import find_share_path

INTERFACE_PACKAGE = 'vla_msgs'


def find_msg_dir(package: str = INTERFACE_PACKAGE) -> Path:
    """Return the installed `share/<package>/msg` folder holding the package's .msg files."""
    return find_share_path(package, 'msg', f'.msg files of {package}')


def make_typestore(store: Stores = Stores.ROS2_KILTED) -> Typestore:
    """Return a type store with the ROS 2 standard types of `store` and every vla_msgs type."""
    typestore = get_typestore(store)
    msg_dir = find_msg_dir()
    types = {}
    for msg_file in sorted(msg_dir.glob('*.msg')):
        name = f'{INTERFACE_PACKAGE}/msg/{msg_file.stem}'
        types.update(get_types_from_msg(msg_file.read_text(encoding='utf-8'), name))
    typestore.register(types)
    return typestore
