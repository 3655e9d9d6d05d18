"""Build description of the vla_ros ament_python package."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = 'vla_ros'

setup(
    name=PACKAGE_NAME,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE_NAME}']),
        (f'share/{PACKAGE_NAME}', ['package.xml']),
        (f'share/{PACKAGE_NAME}/config', glob('config/*.yaml')),
        (f'share/{PACKAGE_NAME}/models', glob('models/*')),
        (f'share/{PACKAGE_NAME}/launch', glob('launch/*.launch.py')),
        # `vla replay-test`: the references, and one folder per input bag
        (f'share/{PACKAGE_NAME}/replay_regression', glob('replay_regression/*.*')),
        *(
            (f'share/{PACKAGE_NAME}/{folder}', glob(f'{folder}/*'))
            for folder in sorted(glob('replay_regression/inputs/*'))
        ),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='vla_ros maintainers',
    maintainer_email='maintainers@vla-ros.org',
    description='Nodes and tools that run an end-to-end Vision-Language-Action driving model.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'vla = vla_tools.cli:main',
            'sensor_sync_node = vla_perception.sensor_sync_node:main',
            'vla_inference_node = vla_planning.vla_inference_node:main',
            'safety_monitor_node = vla_planning.safety_monitor_node:main',
            'trajectory_output_node = vla_planning.trajectory_output_node:main',
            'sim_bridge_node = vla_sim.sim_bridge_node:main',
        ],
    },
)
