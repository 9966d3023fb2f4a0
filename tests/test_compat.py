import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_open_clip_imports_through_compat_and_patch_only_when_ops_missing():
    result = run(
        "import torch\n"
        "from zsindex import _compat\n"
        "native = _compat._load_native_ops(torch)\n"
        "patched = _compat.ensure_torchvision_importable()\n"
        "open_clip = _compat.import_open_clip()\n"
        "import torchvision.transforms\n"
        "assert patched == (not native), (patched, native)\n"
        "assert _compat.ensure_torchvision_importable() == patched  # idempotent\n"
        "print('patched' if patched else 'native', open_clip.__version__)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] in ("patched", "native")


def test_torchvision_transforms_work_after_patch():
    result = run(
        "from zsindex._compat import import_open_clip\n"
        "import_open_clip()\n"
        "from PIL import Image\n"
        "from torchvision import transforms as T\n"
        "t = T.Compose([T.Resize(8), T.ToTensor()])(Image.new('RGB', (20, 10)))\n"
        "print(tuple(t.shape))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3, 8, 16)"
