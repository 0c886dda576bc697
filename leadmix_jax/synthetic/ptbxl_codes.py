"""The SCP-ECG statements, diagnosis mix and report texts of the synthetic
PTB-XL (:mod:`leadmix_jax.synthetic.ptbxl_writer`; testing only)."""

# code: (description, kind D/F/R, diagnostic_class, diagnostic_subclass, category, AHA code)
_SCP = {
    "NORM": ("normal ECG", "D", "NORM", "NORM", "Normal/abnormal", "1"),
    "IMI": ("myocardial infarction, inferior", "D", "MI", "IMI", "Myocardial Infarction", "161"),
    "ASMI": ("myocardial infarction, anteroseptal", "D", "MI", "AMI", "Myocardial Infarction", "165"),
    "ILMI": ("myocardial infarction, inferolateral", "D", "MI", "IMI", "Myocardial Infarction", ""),
    "AMI": ("myocardial infarction, anterior", "D", "MI", "AMI", "Myocardial Infarction", "160"),
    "ALMI": ("myocardial infarction, anterolateral", "D", "MI", "AMI", "Myocardial Infarction", ""),
    "LMI": ("myocardial infarction, lateral", "D", "MI", "LMI", "Myocardial Infarction", "163"),
    "PMI": ("myocardial infarction, posterior", "D", "MI", "PMI", "Myocardial Infarction", "162"),
    "IPLMI": ("myocardial infarction, inferoposterolateral", "D", "MI", "IMI", "Myocardial Infarction", ""),
    "IPMI": ("myocardial infarction, inferoposterior", "D", "MI", "IMI", "Myocardial Infarction", ""),
    "INJAS": ("subendocardial injury, anteroseptal", "D", "MI", "AMI", "Myocardial Infarction", ""),
    "INJAL": ("subendocardial injury, anterolateral", "D", "MI", "AMI", "Myocardial Infarction", ""),
    "INJIN": ("subendocardial injury, inferior", "D", "MI", "IMI", "Myocardial Infarction", ""),
    "INJIL": ("subendocardial injury, inferolateral", "D", "MI", "IMI", "Myocardial Infarction", ""),
    "INJLA": ("subendocardial injury, lateral", "D", "MI", "AMI", "Myocardial Infarction", ""),
    "NDT": ("T abnormalities, non-diagnostic", "DF", "STTC", "STTC", "ST-T descriptive", ""),
    "NST_": ("ST changes, non-specific", "DF", "STTC", "NST_", "ST-T basic roots", "145"),
    "ISC_": ("ischemic ST-T changes, non-specific", "D", "STTC", "ISC_", "ST-T basic roots", "226"),
    "LVH": ("hypertrophy, left ventricular", "D", "HYP", "LVH", "Ventricular Hypertrophy", "142"),
    "IRBBB": ("right bundle branch block, incomplete", "D", "CD", "IRBBB", "Conduction disturbances", "105"),
    "CLBBB": ("left bundle branch block, complete", "D", "CD", "CLBBB", "Conduction disturbances", "104"),
    "1AVB": ("AV block, first degree", "D", "CD", "_AVB", "Conduction disturbances", ""),
    "ABQRS": ("QRS complex, abnormal", "F", "", "", "QRS form", ""),
    "QWAVE": ("Q waves present", "F", "", "", "QRS form", ""),
    "INVT": ("T waves, inverted", "F", "", "", "T form", "367"),
    "LVOLT": ("QRS voltage, low", "F", "", "", "QRS form", ""),
    "SR": ("rhythm, sinus", "R", "", "", "Rhythm", "20"),
    "SBRAD": ("rhythm, sinus bradycardia", "R", "", "", "Rhythm", "22"),
    "STACH": ("rhythm, sinus tachycardia", "R", "", "", "Rhythm", "21"),
    "AFIB": ("rhythm, atrial fibrillation", "R", "", "", "Rhythm", "50"),
}
_PAPER_MI = ("IMI", "ASMI", "ILMI", "AMI", "ALMI")
_MI_TERRITORY = {
    "IMI": "inferior",
    "ILMI": "inferolateral",
    "IPLMI": "inferolateral",
    "IPMI": "inferior",
    "INJIN": "inferior",
    "INJIL": "inferolateral",
    "ASMI": "anterior",
    "AMI": "anterior",
    "INJAS": "anterior",
    "ALMI": "anterolateral",
    "INJAL": "anterolateral",
    "INJLA": "lateral",
    "LMI": "lateral",
    "PMI": "posterior",
}
_OTHER_CONDITION = {
    "LVH": "lvh",
    "NDT": "ndt",
    "NST_": "ndt",
    "ISC_": "ndt",
    "CLBBB": "bbb",
    "IRBBB": "bbb",
    "1AVB": "avb",
}
# (weight, diagnostic codes with likelihoods, extra form / rhythm codes)
_PTBXL_MIX = (
    (40, {"NORM": 100.0}, ()),
    (6, {"NORM": 80.0}, ()),
    (3, {"NORM": 100.0}, ("LVOLT",)),
    (2, {"NORM": 100.0, "IRBBB": 100.0}, ()),  # paper: normal; alt: excluded
    (7, {"IMI": 100.0}, ()),
    (3, {"IMI": 35.0}, ("ABQRS",)),
    (6, {"ASMI": 100.0}, ()),
    (2, {"AMI": 100.0}, ()),
    (2, {"ALMI": 100.0}, ()),
    (2, {"ILMI": 100.0}, ("QWAVE",)),
    (2, {"IMI": 100.0, "ASMI": 15.0}, ()),
    (1, {"ASMI": 50.0, "INJAS": 100.0}, ("INVT",)),
    (1, {"IMI": 0.0, "NDT": 100.0}, ()),  # MI at likelihood 0 counts
    (2, {"LMI": 100.0}, ()),
    (1, {"PMI": 100.0}, ()),
    (1, {"IPLMI": 100.0}, ()),
    (1, {"INJIN": 50.0}, ()),  # MI only in the superclass rule
    (5, {"LVH": 100.0}, ()),
    (5, {"NDT": 100.0}, ()),
    (3, {"NST_": 100.0}, ()),
    (2, {"ISC_": 50.0, "LVH": 100.0}, ()),
    (2, {"CLBBB": 100.0}, ()),
    (2, {"IRBBB": 100.0}, ()),
    (2, {"1AVB": 100.0}, ()),
    (2, {"NDT": 100.0}, ("AFIB",)),
)
# Label-rule edge cases, each placed once in any database of >= 40 records.
_PTBXL_EDGE = tuple(
    i
    for i, m in enumerate(_PTBXL_MIX)
    if m[1]
    in (
        {"NORM": 100.0, "IRBBB": 100.0},
        {"IMI": 0.0, "NDT": 100.0},
        {"LMI": 100.0},
        {"PMI": 100.0},
        {"INJIN": 50.0},
        {"IMI": 35.0},
        {"ALMI": 100.0},
        {"ILMI": 100.0},
    )
)
_DEVICES = ("CS-12   E", "CS-12", "AT-6 C", "AT-6 C 5.5", "AT-60    3", "CS100    3")
_REPORT = {
    "NORM": "normales ekg",
    "IMI": "inferiorer infarkt",
    "ASMI": "anteroseptaler infarkt",
    "AMI": "anteriorer infarkt",
    "ALMI": "anterolateraler infarkt",
    "ILMI": "inferolateraler infarkt",
    "LMI": "lateraler infarkt",
    "PMI": "posteriorer infarkt",
    "LVH": "linksventrikuläre hypertrophie",
    "NDT": "t-veränderungen unspezifisch",
    "NST_": "st-veränderungen unspezifisch",
    "ISC_": "ischämische st-t-veränderungen",
    "CLBBB": "kompletter linksschenkelblock",
    "IRBBB": "inkompletter rechtsschenkelblock",
    "1AVB": "av-block i. grades",
    "INJAS": "anteroseptale innenschichtschädigung",
    "INJIN": "inferiore schädigung",
    "IPLMI": "inferoposterolateraler infarkt",
}
_RHYTHM_TEXT = {
    "SR": "sinusrhythmus",
    "SBRAD": "sinusbradykardie",
    "STACH": "sinustachykardie",
    "AFIB": "vorhofflimmern",
}
