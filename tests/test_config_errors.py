"""Config mistakes are named in one line with the closest valid key or class."""

from a2i.config_errors import summarize

NESTED_OPTION = """Parser key "model":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'a2i.methods.base.A2IMethod'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'a2i.methods.sound2vision.Sound2Vision':
        Parser key "generator":
          Problem with given class_path 'a2i.generators.biggan.BigGANGenerator':
            Option 'prest' is not accepted
    - Expected a <class 'NoneType'>
  Given value type: <class 'jsonargparse._util.NestedArg'>
  Given value: NestedArg(key='generator.init_args.prest', val='tiny')"""

WRONG_CLASS = """Parser key "model":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'a2i.methods.base.A2IMethod'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'a2i.methods.sound2vision.Sound2Vision':
        Parser key "generator":

          - Expected a path but a2i.generators.biggan.BigGANGenerato either not accessible or invalid
          - Problem with given class_path 'a2i.generators.biggan.BigGANGenerato':
            module 'a2i.generators.biggan' has no attribute 'BigGANGenerato'
    - Expected a <class 'NoneType'>"""

WRONG_CHOICE = """Parser key "model":
  Errors:
    - Problem with given class_path 'a2i.methods.sound2vision.Sound2Vision':
        Parser key "loss":
          Expected a typing.Literal['l2', 'nce_cosine', 'nce_l2']. Got value: nce_l3
    - Expected a <class 'NoneType'>"""


def test_unknown_nested_key_is_named_in_full_with_the_closest_argument():
    assert summarize(NESTED_OPTION) == (
        "unknown key 'model.init_args.generator.init_args.prest' of "
        "a2i.generators.biggan.BigGANGenerator (did you mean 'preset'?)"
    )


def test_unknown_class_gets_the_closest_class_of_its_module():
    assert summarize(WRONG_CLASS) == (
        "'model.init_args.generator': there is no class a2i.generators.biggan.BigGANGenerato "
        "(did you mean 'BigGANGenerator'?)"
    )


def test_wrong_choice_lists_the_allowed_values():
    assert summarize(WRONG_CHOICE) == (
        "'model.init_args.loss' must be one of l2, nce_cosine, nce_l2, not 'nce_l3' "
        "(did you mean 'nce_l2'?)"
    )


def test_unrecognized_option_gets_the_closest_option():
    line = summarize("Unrecognized arguments: --ckpt_pth x", ["--ckpt_path", "--config"])
    assert line == "unknown option --ckpt_pth (did you mean '--ckpt_path'?)"
