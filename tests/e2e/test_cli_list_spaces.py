"""`maskctl list spaces`: the shipped tune search spaces, like the shipped recipes."""
from cli_helpers import invoke, one_line_error


def test_list_spaces_and_a_misspelt_kind():
    result = invoke("list", "spaces")
    assert result.exit_code == 0 and "levers" in result.output and "tune run --space NAME" in result.output
    result = invoke("list")
    assert "space" in result.output and "levers" in result.output
    result = invoke("list", "spacse")
    assert result.exit_code == 1 and "Did you mean 'spaces'" in one_line_error(result)
