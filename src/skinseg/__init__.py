"""napari-skinseg: quantitative skin imaging (OCT layers, epidermal thickness, nerve crossings).

The library (everything here except ``skinseg._napari``) uses numpy, torch and MONAI
only and never imports napari or Qt.
"""

__version__ = "0.1.0"
