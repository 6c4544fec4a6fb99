"""The kernel benchmark's bookkeeping (not its timings): cold stacks exceed the asked size, each
printed table has one header per column, and the ratios compare against the fastest torch method."""
from trix.bench import kernels as kb


def test_cold_layers_exceed_the_asked_bytes():
    for per, total in [(4 << 20, 64 << 20), (64 << 20, 64 << 20), (1, 10), (100 << 20, 64 << 20)]:
        n = kb.cold_layers(per, total)
        assert n >= 2 and n * per > total


def test_llc_bytes_is_positive():
    assert kb.llc_bytes() > 0


def test_ratios_use_the_fastest_torch_method():
    med = {"torch_f32": 1000.0, "torch_bf16": 800.0, "torch_i8_fbgemm": 300.0, "torch_i8_onednn": 200.0,
           "torchao_i8": 5000.0, "trix_f32": 500.0, "trix_prep": 250.0, "trix_i8": 100.0}
    r = kb._ratios(med)
    assert r["best_torch_int8"] == "torch_i8_onednn" and r["trix_i8_vs_best_torch_int8"] == 2.0
    assert r["best_torch"] == "torch_i8_onednn" and r["trix_i8_vs_best_torch"] == 2.0
    assert r["trix_i8_vs_torch_f32"] == 10.0 and r["trix_prep_vs_torch_f32"] == 4.0


def test_table_headers_match_the_columns(capsys):
    names = ["torch_f32", "torch_i8_x86", "trix_prep", "trix_i8"]
    med = {"torch_f32": 1000.0, "torch_i8_x86": 300.0, "trix_prep": 250.0, "trix_i8": 100.0}
    rows = [dict(m=64, k=128, n=1, warm_wall=dict(us=med, ratios=kb._ratios(med)))]
    kb._print_table("t", rows, names, "warm_wall")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip() and ln != "t"]
    header, values = lines[0].split(), lines[1].split()
    assert len(header) == len(values)
    assert values[header.index("trix_i8")] == "100.0"
