"""Benchmarks write into their own marked section of docs/benchmarks.md and leave the rest alone."""

from worldrl.evaluation.report import describe_machine, update_doc_section


def test_sections_are_replaced_in_place_or_appended(tmp_path):
    doc = tmp_path / "benchmarks.md"
    update_doc_section(doc, "speed", "first")
    update_doc_section(doc, "fidelity", "other")
    update_doc_section(doc, "speed", "second")
    text = doc.read_text()
    assert text.startswith("# Benchmarks")
    assert text.count("<!-- speed:start -->") == 1 and "second" in text and "first" not in text
    assert text.index("<!-- speed:end -->") < text.index("<!-- fidelity:start -->")  # kept its place
    assert "other" in text


def test_machine_description_names_cpus_and_torch():
    text = describe_machine()
    assert "CPUs" in text and "torch" in text
