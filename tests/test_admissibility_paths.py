"""`generate`'s rule holds on every path: a family that `check` rejects is refused unless
`--allow-inadmissible` / ``allow_inadmissible=True``, and then the module carries the warning.

The quartic A = eta^4 is not admissible by Marcinkiewicz's theorem (exp of a polynomial of
degree > 2 is never a characteristic function); fermi_dirac by an exact negative series
coefficient (tests/test_admissibility.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deqfam
from deqfam.api import InadmissibleFamilyError, family_module, torch_family
from deqfam.cli import main
from deqfam.demo import DemoConfig, run_demo
from deqfam.fitting import fit

QUARTIC = "name: quartic\nsupport: real\nlog_partition: eta**4\ndomain: [-oo, oo]\n"
REFUSAL = r"verdict not_admissible.*--allow-inadmissible"


@pytest.fixture
def quartic(tmp_spec, tmp_path, monkeypatch):
    """A quartic spec file, with the on-the-fly module cache in a private folder."""
    monkeypatch.setenv("DEQFAM_CACHE", str(tmp_path / "cache"))
    return tmp_spec(QUARTIC, "quartic.yaml")


@pytest.fixture
def data_csv(tmp_path):
    path = tmp_path / "y.csv"
    np.savetxt(path, np.random.default_rng(0).normal(size=(8, 3)), delimiter=",")
    return path


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "verdict not_admissible" in err and "--allow-inadmissible" in err
    assert "Traceback" not in err
    return err


def test_cli_fit_export_demo_refuse_a_quartic(quartic, data_csv, tmp_path, capsys):
    _refused(capsys, ["fit", str(data_csv), "--family", str(quartic), "--latent-dim", "1",
                      "--out", str(tmp_path / "fit"), "--quiet"])  # fmt: skip
    assert not (tmp_path / "fit").exists()
    _refused(capsys, ["export", str(quartic), "-o", str(tmp_path / "q.pt2")])
    assert not (tmp_path / "q.pt2").exists()
    _refused(capsys, ["demo", "--spec", str(quartic), "--out", str(tmp_path / "demo")])
    assert not (tmp_path / "demo").exists()


def test_cli_refuses_the_builtin_fermi_dirac(data_csv, tmp_path, capsys):
    err = _refused(capsys, ["fit", str(data_csv), "--family", "fermi_dirac", "--latent-dim",
                            "1", "--out", str(tmp_path / "fit")])  # fmt: skip
    assert "fermi_dirac" in err
    _refused(capsys, ["export", "fermi_dirac", "-o", str(tmp_path / "fd.pt2")])


@pytest.mark.slow  # a full (one-epoch) fit with plots: ~10 s on a busy machine
def test_cli_fit_proceeds_with_the_flag(quartic, data_csv, tmp_path, capsys):
    argv = ["fit", str(data_csv), "--family", str(quartic), "--latent-dim", "1", "--epochs",
            "1", "--out", str(tmp_path / "fit"), "--quiet", "--allow-inadmissible"]  # fmt: skip
    with pytest.warns(UserWarning, match="quartic is NOT admissible"):
        assert main(argv) == 0
    assert (tmp_path / "fit" / "latents.npy").is_file()


def test_api_generate_and_cache_key(quartic, tmp_path):
    with pytest.raises(InadmissibleFamilyError, match=REFUSAL):
        deqfam.generate(quartic)
    with pytest.raises(InadmissibleFamilyError, match=REFUSAL):
        family_module(str(quartic))
    with pytest.warns(UserWarning, match="NOT admissible"):
        module = family_module(str(quartic), allow_inadmissible=True)
    assert "quartic is NOT admissible" in module.ADMISSIBILITY_WARNING
    assert module.__file__.split("/")[-2].endswith("-inadmissible-allowed")
    # the allowed module sits in the cache, but a run that did not ask is still refused
    with pytest.raises(InadmissibleFamilyError, match=REFUSAL):
        family_module(str(quartic))
    # and the module itself, handed over, is judged by the warning it carries
    with pytest.raises(InadmissibleFamilyError, match=REFUSAL):
        torch_family(module)
    # sigma = A' = 4 eta^3 (closed form), so the allowed module is the quartic's
    eta = torch.linspace(-2, 2, 9, dtype=torch.float64)
    torch.testing.assert_close(module.activation(eta), 4 * eta**3, rtol=1e-14, atol=1e-14)


def test_api_facades_and_pipeline_refuse(quartic, tmp_path):
    with pytest.raises(InadmissibleFamilyError, match=REFUSAL):
        deqfam.ExpFamPCA(str(quartic), 3, 1)
    with pytest.raises(InadmissibleFamilyError, match=REFUSAL):
        deqfam.KGLMDEQ(str(quartic), 3, 2)
    with pytest.raises(InadmissibleFamilyError, match=REFUSAL):
        deqfam.ExpFamPCA("fermi_dirac", 3, 1)
    with pytest.raises(InadmissibleFamilyError, match=REFUSAL):
        fit(torch.zeros(4, 3, dtype=torch.float64), str(quartic), 1)
    with pytest.raises(InadmissibleFamilyError, match=REFUSAL):
        run_demo(DemoConfig(spec=str(quartic), out=tmp_path / "demo"))
    with pytest.warns(UserWarning, match="NOT admissible"):
        model = deqfam.ExpFamPCA(str(quartic), 3, 1, allow_inadmissible=True, dtype=torch.float64)
    assert model.family.name == "quartic"
    assert not (tmp_path / "demo").exists()


def test_admissible_families_pass_without_warning(recwarn):
    module = family_module("poisson")
    assert module.ADMISSIBILITY_WARNING is None
    assert not [w for w in recwarn if "admissib" in str(w.message)]
