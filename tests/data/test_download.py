"""Downloads (leadmix_jax/data/build/download.py) against a local HTTP server on
127.0.0.1 serving small synthetic PTB-XL and PTB databases in PhysioNet's
layout, with a SHA256SUMS.txt, one corrupted file and broken transfers. No
test touches the network."""

import hashlib
import http.server
import json
import threading
import urllib.parse
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import runs
from leadmix_jax import synthetic
from leadmix_jax.data.build import builder as build_lib, checksums, databases, download

REPO = Path(__file__).resolve().parents[2]


def write_sums(root: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.relative_to(root).as_posix()}"
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != checksums.SUMS_NAME
    ]
    (root / checksums.SUMS_NAME).write_text("\n".join(lines) + "\n")


class Server:
    """A PhysioNet-like file server: ``/files/<project>/<path>`` from ``folders``;
    ``broken[path]`` transfers to break (n, or -1 for every one): headers with
    the full length, half the bytes, then the connection closed."""

    def __init__(self, folders: dict[str, Path]):
        self.folders, self.requests, self.broken = folders, [], Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server interface
                project, version, rel = (self.path.removeprefix("/files/").split("/", 2) + ["", ""])[:3]
                rel = urllib.parse.unquote(rel)
                server.requests.append(rel)
                path = server.folders.get(f"{project}/{version}", Path("/nonexistent")) / rel
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.broken[rel]:
                    server.broken[rel] -= 1 if server.broken[rel] > 0 else 0
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Synthetic PTB-XL (60 records) and PTB (12 patients) with published sums;
    after summing, one kept PTB-XL record's .dat is corrupted."""
    root = tmp_path_factory.mktemp("physionet")
    ptbxl_root, ptb_root = root / "ptb-xl", root / "ptbdb"
    info = synthetic.write_ptbxl(ptbxl_root, 60, seed=3)
    synthetic.write_ptb(ptb_root, 12, seed=3)
    write_sums(ptbxl_root)
    write_sums(ptb_root)
    mi = [r for r in info["records"] if r["label"] == "mi"]
    normal = [int(r["ecg_id"]) for r in info["records"] if r["label"] == "normal"]
    bad = f"records500/00000/{int(mi[0]['ecg_id']):05d}_hr.dat"
    data = bytearray((ptbxl_root / bad).read_bytes())
    data[1000:1010] = b"\xff" * 10
    (ptbxl_root / bad).write_bytes(bytes(data))
    server = Server({"ptb-xl/1.0.3": ptbxl_root, "ptbdb/1.0.0": ptb_root})
    yield {"server": server, "ptbxl": ptbxl_root, "ptb": ptb_root, "bad": bad, "info": info, "normal": normal}
    server.close()


def build(name, data_dir, config="paper", manual_dir=None):
    builder = databases.builder_class(name)(data_dir=str(data_dir), config=config, num_workers=1)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir) if manual_dir else None)
    )
    return builder, json.loads((Path(builder.data_dir) / build_lib.REPORT_NAME).read_text())


def examples(builder) -> dict[str, np.ndarray]:
    out = {}
    for split in builder.info.splits:
        src = builder.as_data_source(split=split)
        for i in range(len(src)):
            out[f"{src[i]['record_id']}#{src[i]['window']}"] = src[i]["ecg"]
    return out


def test_a_download_build_equals_the_manual_build_with_the_corrupted_file_skipped(
    served, tmp_path, monkeypatch
):
    server = served["server"]
    monkeypatch.setenv(download.PHYSIONET_URL_ENV, server.url)
    server.requests.clear()
    interrupted = f"records500/00000/{served['normal'][0]:05d}_hr.dat"
    server.broken[interrupted] = 1  # the first transfer breaks half-way, the retry succeeds
    got, report = build("ptbxl_mi", tmp_path / "dl")
    want, manual_report = build("ptbxl_mi", tmp_path / "manual", manual_dir=served["ptbxl"])

    bad_id = str(int(Path(served["bad"]).name[:5]))
    for r in (report, manual_report):  # the same checks from a download and from --manual_dir
        assert set(r["skipped"]) == {"checksum_mismatch"} and r["skipped"]["checksum_mismatch"]["count"] == 1
        (skip,) = r["skipped"]["checksum_mismatch"]["examples"]
        assert skip["record_id"] == bad_id and skip["detail"].startswith(Path(served["bad"]).name)
        assert r["checksums"]["published"].endswith("SHA256SUMS.txt") and r["checksums"]["mismatched"] == 1
    labelled = report["records_labelled"]
    assert report["checksums"]["files_checked"] == 1 + 2 * labelled  # ptbxl_database.csv + .hea/.dat
    assert report["downloaded"] == {
        "from": f"{server.url}/ptb-xl/1.0.3/",
        "files_downloaded": 3 + 2 * labelled,
        "not_on_server": 0,
    }
    got_examples, want_examples = examples(got), examples(want)
    assert sorted(got_examples) == sorted(want_examples) and len(got_examples) == labelled - 1
    for key, ecg in want_examples.items():
        np.testing.assert_array_equal(got_examples[key], ecg)

    # only what the build reads, each once; the broken transfer twice
    asked = Counter(server.requests)
    assert asked[interrupted] == 2 and asked["SHA256SUMS.txt"] == 1
    assert all(n == 1 for rel, n in asked.items() if rel != interrupted)
    assert not any(rel.startswith("records100/") for rel in asked)
    excluded = [r for r in served["info"]["records"] if r["label"] not in ("mi", "normal")]
    assert excluded and not any(f"{int(r['ecg_id']):05d}_hr" in rel for r in excluded for rel in asked)


def test_an_interrupted_download_stops_in_one_line_and_resumes(served, tmp_path, monkeypatch):
    server = served["server"]
    monkeypatch.setenv(download.PHYSIONET_URL_ENV, server.url)
    server.requests.clear()
    failing = f"records100/00000/{served['normal'][1]:05d}_lr.dat"
    server.broken[failing] = -1  # every transfer breaks
    with pytest.raises(download.DownloadError, match="run the same command again to resume") as err:
        build("ptbxl_mi", tmp_path, config="paper_100hz")
    assert failing in str(err.value) and "\n" not in str(err.value)
    assert Counter(server.requests)[failing] == 3  # 3 attempts
    assert not (tmp_path / "ptbxl_mi" / "paper_100hz" / "1.1.0" / "dataset_info.json").exists()

    server.broken[failing] = 0
    server.requests.clear()
    _, report = build("ptbxl_mi", tmp_path, config="paper_100hz")
    assert server.requests == [failing]  # everything else came from the first run
    assert report["records_kept"] == report["records_labelled"]  # the corrupted 500 Hz file is not read
    assert report["skipped"] == {}


def test_ptb_downloads_its_headers_then_only_the_kept_records(served, tmp_path, monkeypatch):
    server = served["server"]
    monkeypatch.setenv(download.PHYSIONET_URL_ENV, server.url)
    server.requests.clear()
    _, report = build("ptbdb_mi", tmp_path)
    _, manual = build("ptbdb_mi", tmp_path / "manual", manual_dir=served["ptb"])
    for key in ("records_kept", "records", "windows_per_split", "records_excluded_label", "skipped"):
        assert report[key] == manual[key], key
    asked = set(server.requests)
    names = (served["ptb"] / "RECORDS").read_text().split()
    assert {f"{n}.hea" for n in names} <= asked  # every header: the label is in it
    dats = {rel for rel in asked if rel.endswith(".dat")}
    assert len(dats) == report["records_labelled"] < len(names)  # .dat of MI/control records only
    assert not any(rel.endswith(".xyz") for rel in asked)


def test_metadata_that_differs_from_its_checksum_stops_the_build(served, tmp_path):
    root = tmp_path / "src"
    (root / "records500").mkdir(parents=True)
    for name in ("ptbxl_database.csv", "scp_statements.csv", "SHA256SUMS.txt"):
        (root / name).write_bytes((served["ptbxl"] / name).read_bytes())
    with open(root / "ptbxl_database.csv", "a") as fh:
        fh.write("\n")
    with pytest.raises(checksums.MetadataChecksumError, match="ptbxl_database.csv: sha256 .* differs"):
        build("ptbxl_mi", tmp_path / "out", manual_dir=root)


def test_a_database_not_on_the_server_is_one_clear_line(tmp_path, monkeypatch):
    server = Server({})
    try:
        monkeypatch.setenv(download.PHYSIONET_URL_ENV, server.url)
        with pytest.raises(download.DownloadError, match="ptbxl_database.csv: not on the server"):
            build("ptbxl_mi", tmp_path)
    finally:
        server.close()


def test_sph_is_not_downloaded_and_says_so(tmp_path):
    with pytest.raises(build_lib.NotTheDatabaseError, match="sph_mi is not downloaded by the build"):
        build("sph_mi", tmp_path)


@pytest.mark.slow
def test_tfds_build_without_manual_dir_downloads(served, tmp_path):
    server = served["server"]
    server.requests.clear()
    out = runs.tfds_build(
        "ptbxl_mi",
        tmp_path,
        "--config=paper_100hz",
        workers=1,
        env={download.PHYSIONET_URL_ENV: server.url},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = build_lib.read_report(tmp_path, "ptbxl_mi", "paper_100hz")
    assert report["downloaded"]["from"] == f"{server.url}/ptb-xl/1.0.3/"
    assert report["records_kept"] == report["records_labelled"] > 0
    assert "downloading" in out.stdout and "SHA256SUMS.txt" in out.stdout
