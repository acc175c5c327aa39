"""DICOM de-identification: PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Written by hand against the profile's Table E.1-1 (DICOM 2024b, "Basic Prof."
column), transcribed below as :data:`BASIC_PROFILE` by attribute keyword. We
did not use dicognito (installed, well kept) because its behaviour differs from
what this project needs: it shifts dates instead of removing them, keeps private
attributes, derives new UIDs with MD5 under a ``2.`` root rather than a keyed
hash under ``2.25.``, and has no burned-in-annotation check.

What happens to each attribute, in this order:

1. **Pixel data** (and float pixel data) is copied as it is, never decoded.
2. **Private attributes** (odd groups) are removed, creators included (the profile's
   X for private tags; the Retain Safe Private option is not offered). Curves
   (50xx) and overlays (60xx, whose bitmaps can draw text) are removed whole;
   group lengths are dropped (they would be stale).
3. **Attributes in the table** get its action: X remove, Z empty, D dummy (for a
   sequence: its items are cleaned by these same rules), U new UID, K keep.
   Compound actions resolve to the stricter one — X/Z, X/D and X/Z/D to X, Z/D to
   Z — except ``PatientID`` (Z/D), which becomes a keyed pseudonym so that one
   patient's studies stay together under one key, and X/Z/U* (referenced image
   sequences), whose items are kept and cleaned, so references inside a study
   still resolve. A Type 1 attribute of some enhanced IODs may so go missing: the
   file stays readable, and nothing identifying is left in it.
4. **Everything else, by value representation**: names (PN), dates and times (DA,
   DT, TM), AE titles, URLs (UR) and free text (LT, ST, UT) are removed, whether
   the table lists them or not (new attributes appear every edition); UIDs are
   remapped unless they name a class, a transfer syntax or a coding scheme, or
   are DICOM's own well-known UIDs (``1.2.840.10008.*``); attributes our
   dictionary does not know are removed; the rest (acquisition parameters,
   geometry, codes) is kept. Sequences are walked item by item.

UIDs: ``2.25.`` followed by the decimal value of a UUID made from HMAC-SHA256
of the original UID under a key (PS3.5 B.2). The same UID under the same key
always gives the same new UID — across the files of a study and across calls —
so use one key per release (:class:`DicomDeidentifier` keeps one for you) and
never publish it. Without a key a random one is made per
:class:`DicomDeidentifier` (per call for the functions).

Afterwards ``PatientIdentityRemoved`` is YES, ``DeidentificationMethod`` and
its code sequence name this profile (DCM 113100, and 113108 with the Retain
Patient Characteristics option, which keeps age — 90 years and over become
``090Y`` — sex, size, weight and pregnancy status),
``LongitudinalTemporalInformationModified`` is REMOVED, and the file meta
information is rebuilt (new SOP Instance UID; no source AE title; pydicom as the
implementation that wrote it).

**Burned-in text is refused, not risked.** The profile cannot clean pixels, so a
dataset is refused (:class:`~healthnft.records.deid.DeidentificationRefused`)
when ``BurnedInAnnotation`` is YES, when ``RecognizableVisualFeatures`` is YES
(a face can be recognized), when it encapsulates a document (a PDF or CDA
inside names the patient), and when ``BurnedInAnnotation`` is absent or empty
for an image whose kind usually carries burned-in text: ultrasound, angiography
and fluoroscopy, endoscopy, photographs and microscopy (:data:`BURNED_IN_MODALITIES`),
and any Secondary Capture or video (:data:`BURNED_IN_SOP_CLASS_PREFIXES`).
``assume_no_burned_in=True`` lets a caller who has checked such images (or had
their pixels cleaned) vouch for them when the attribute is absent; a YES is
always refused. Not caught: text burned into a CT or MR image that claims NO or
says nothing, and faces reconstructable from a head CT/MR volume (defacing is a
pixel operation, outside this profile).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
import secrets
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from healthnft.errors import InputNotFound, InvalidRecord
from healthnft.records.deid import DeidentificationRefused

#: Table E.1-1, Basic Profile column (DICOM PS3.15 2024b), by attribute keyword.
BASIC_PROFILE_TEXT: dict[str, str] = {
    "X": """
        AcquisitionComments AcquisitionProtocolDescription ActualHumanPerformersSequence
        AdditionalPatientHistory AddressTrial AdmissionID AdmittingDate
        AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription AdmittingTime
        AffectedSOPInstanceUID Allergies AnnotationGroupDescription ApprovalStatusDateTime Arbitrary
        AssertionExpirationDateTime AuthorObserverSequence BeamDescription BolusDescription
        BranchOfService CalibrationDate CalibrationTime CameraOwnerName CassetteID
        CertifiedTimestamp ClinicalTrialProtocolEthicsCommitteeApprovalNumber
        ClinicalTrialSeriesDescription ClinicalTrialSeriesID ClinicalTrialTimePointDescription
        CommentsOnRadiationDose CommentsOnThePerformedProcedureStep CompensatorDescription
        ConfidentialityConstraintOnPatientDataDescription ConsultingPhysicianIdentificationSequence
        ContainerComponentID ContainerDescription ContentCreatorIdentificationCodeSequence
        ContrastBolusStartTime ContrastBolusStopTime ContributionDateTime ContributionDescription
        CountryOfResidence CreationDate CreationTime CurrentObserverTrial CurrentPatientLocation
        CurveDate CurveTime CustodialOrganizationSequence DataSetTrailingPadding
        DateOfDocumentOrVerbalTransactionTrial DateOfInstallation DateOfLastCalibration
        DateOfManufacture DateOfSecondaryCapture DateTimeOfLastCalibration DecompositionDescription
        DerivationDescription DeviceDescription DeviceSettingDescription DigitalSignaturesSequence
        DischargeDate DischargeDiagnosisDescription DischargeTime DisplacementReferenceLabel
        DistributionAddress DistributionName DoseReferenceDescription EntityDescription EntityName
        EquipmentFrameOfReferenceDescription EthicsCommitteeApprovalEffectivenessEndDate
        EthicsCommitteeApprovalEffectivenessStartDate EthnicGroup ExpectedCompletionDateTime
        FilterLookupTableDescription FindingsGroupRecordingDateTrial FindingsGroupRecordingTimeTrial
        FixationDeviceDescription FractionGroupDescription FrameComments GPSAltitude GPSAltitudeRef
        GPSAreaInformation GPSDOP GPSDateStamp GPSDestBearing GPSDestBearingRef GPSDestDistance
        GPSDestDistanceRef GPSDestLatitude GPSDestLatitudeRef GPSDestLongitude GPSDestLongitudeRef
        GPSDifferential GPSImgDirection GPSImgDirectionRef GPSLatitude GPSLatitudeRef GPSLongitude
        GPSLongitudeRef GPSMapDatum GPSMeasureMode GPSProcessingMethod GPSSatellites GPSSpeed
        GPSSpeedRef GPSStatus GPSTimeStamp GPSTrack GPSTrackRef GPSVersionID GantryID GeneratorID
        HL7DocumentEffectiveTime HumanPerformerName HumanPerformerOrganization IconImageSequence
        IdentifyingComments ImageComments ImagePresentationComments ImagingServiceRequestComments
        Impressions InstanceCoercionDateTime InstanceOriginStatus InstitutionAddress
        InstitutionalDepartmentName InstitutionalDepartmentTypeCodeSequence
        InsurancePlanIdentification IntendedFractionStartTime
        IntendedRecipientsOfResultsIdentificationSequence InterpretationApprovalDate
        InterpretationApprovalTime InterpretationApproverSequence InterpretationAuthor
        InterpretationDiagnosisDescription InterpretationID InterpretationIDIssuer
        InterpretationRecordedDate InterpretationRecordedTime InterpretationRecorder
        InterpretationText InterpretationTranscriber InterpretationTranscriptionDate
        InterpretationTranscriptionTime InterventionDrugStartTime InterventionDrugStopTime
        IssueDateOfImagingServiceRequest IssueTimeOfImagingServiceRequest IssuerOfAdmissionID
        IssuerOfAdmissionIDSequence IssuerOfClinicalTrialProtocolID IssuerOfClinicalTrialSeriesID
        IssuerOfClinicalTrialSiteID IssuerOfClinicalTrialSubjectID
        IssuerOfClinicalTrialSubjectReadingID IssuerOfClinicalTrialTimePointID IssuerOfPatientID
        IssuerOfServiceEpisodeID IssuerOfServiceEpisodeIDSequence LastMenstrualDate LensMake
        LensModel LensSerialNumber LensSpecification LongDeviceDescription MAC MakerNote
        MedicalAlerts MedicalRecordLocator MilitaryRank ModifiedAttributesSequence ModifiedImageDate
        ModifiedImageDescription ModifiedImageTime ModifyingDeviceID
        MultienergyAcquisitionDescription NameOfPhysiciansReadingStudy
        NamesOfIntendedRecipientsOfResults NetworkID NonconformingDataElementValue
        NonconformingModifiedAttributesSequence ObservationDateTrial ObservationStartDateTime
        ObservationTimeTrial Occupation OrderCallbackPhoneNumber OrderCallbackTelecomInformation
        OrderEnteredBy OrderEntererLocation OriginalAttributesSequence Originator
        OtherClinicalTrialProtocolIDsSequence OtherPatientIDs OtherPatientIDsSequence
        OtherPatientNames OverlayDate OverlayTime ParticipantSequence PatientAddress PatientAge
        PatientBirthName PatientBirthTime PatientComments PatientInstitutionResidence
        PatientInsurancePlanCodeSequence PatientMotherBirthName PatientPrimaryLanguageCodeSequence
        PatientPrimaryLanguageModifierCodeSequence PatientReligiousPreference
        PatientSetupPhotoDescription PatientSize PatientState PatientTelecomInformation
        PatientTelephoneNumbers PatientTransportArrangements
        PatientTreatmentPreparationMethodDescription
        PatientTreatmentPreparationProcedureParameterDescription PatientWeight PerformedLocation
        PerformedProcedureStepDescription PerformedProcedureStepEndDate
        PerformedProcedureStepEndDateTime PerformedProcedureStepEndTime PerformedProcedureStepID
        PerformedProcedureStepStartDate PerformedProcedureStepStartDateTime
        PerformedProcedureStepStartTime PerformedStationAETitle
        PerformedStationGeographicLocationCodeSequence PerformedStationName
        PerformedStationNameCodeSequence PerformingPhysicianIdentificationSequence
        PerformingPhysicianName PersonAddress PersonTelecomInformation PersonTelephoneNumbers
        PhysicianApprovingInterpretation PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence
        PhysiciansReadingStudyIdentificationSequence PlateID PositionAcquisitionTemplateDescription
        PositionAcquisitionTemplateName PreMedication PregnancyStatus PrescriptionDescription
        PresentationCreationDate PresentationCreationTime PriorTreatmentDoseDescription
        ProcedureStepCancellationDateTime ProductExpirationDateTime PyramidDescription PyramidLabel
        ROICreatorSequence ROIDateTime ROIDescription ROIGenerationDescription
        ROIInterpreterSequence ROIObservationDateTime ROIObservationDescription ROIObservationLabel
        RTPlanDescription RTPlanName RadiopharmaceuticalStartDateTime RadiopharmaceuticalStartTime
        RadiopharmaceuticalStopDateTime RadiopharmaceuticalStopTime ReasonForOmissionDescription
        ReasonForRequestedProcedureCodeSequence ReasonForStudy ReasonForTheImagingServiceRequest
        ReasonForTheRequestedProcedure ReasonForVisit ReasonForVisitCodeSequence ReceivingAE
        ReferencedDigitalSignatureSequence ReferencedPatientAliasSequence
        ReferencedPatientPhotoSequence ReferencedPatientSequence ReferencedSOPInstanceMACSequence
        ReferringPhysicianAddress ReferringPhysicianIdentificationSequence
        ReferringPhysicianTelephoneNumbers RegionOfResidence RequestAttributesSequence
        RequestedContrastAgent RequestedProcedureComments RequestedProcedureID
        RequestedProcedureLocation RequestedSeriesDescription RequestingAE RequestingPhysician
        RequestingService RespiratoryMotionCompensationTechniqueDescription ResponsibleOrganization
        ResponsiblePerson ResultsComments ResultsDistributionListSequence ResultsID ResultsIDIssuer
        RetrieveAETitle SOPAuthorizationDateTime ScheduledAdmissionDate ScheduledAdmissionTime
        ScheduledDischargeDate ScheduledDischargeTime ScheduledHumanPerformersSequence
        ScheduledPatientInstitutionResidence ScheduledPerformingPhysicianIdentificationSequence
        ScheduledPerformingPhysicianName ScheduledProcedureStepDescription
        ScheduledProcedureStepEndDate ScheduledProcedureStepEndTime
        ScheduledProcedureStepExpirationDateTime ScheduledProcedureStepID
        ScheduledProcedureStepLocation ScheduledProcedureStepModificationDateTime
        ScheduledProcedureStepStartDate ScheduledProcedureStepStartDateTime
        ScheduledProcedureStepStartTime ScheduledStationAETitle
        ScheduledStationGeographicLocationCodeSequence ScheduledStationName
        ScheduledStationNameCodeSequence ScheduledStudyLocation ScheduledStudyLocationAETitle
        ScheduledStudyStartDate ScheduledStudyStartTime ScheduledStudyStopDate
        ScheduledStudyStopTime SeriesDescription ServiceEpisodeDescription ServiceEpisodeID
        SetupTechniqueDescription ShieldingDeviceDescription SlideIdentifier SmokingStatus
        SourceManufacturer SpecialNeeds SpecimenAccessionNumber SpecimenDetailedDescription
        SpecimenShortDescription StationAETitle StructureSetDescription StructureSetName
        StudyArrivalDate StudyArrivalTime StudyComments StudyCompletionDate StudyCompletionTime
        StudyDescription StudyIDIssuer StudyReadDate StudyReadTime StudyVerifiedDate
        StudyVerifiedTime SubstanceAdministrationDateTime TelephoneNumberTrial TemplateLocalVersion
        TemplateVersion TextComments TextString TimeOfDocumentCreationOrVerbalTransactionTrial
        TimeOfLastCalibration TimeOfSecondaryCapture TimezoneOffsetFromUTC TopicAuthor TopicKeywords
        TopicSubject TopicTitle TransducerIdentificationSequence TreatmentSites UDISequence
        UniqueDeviceIdentifier VerbalSourceIdentifierCodeSequenceTrial VerbalSourceTrial
        VisitComments WaveformFilterDescription XRayDetectorLabel
    """,
    "Z": """
        AccessionNumber CalibrationDateTime ClinicalTrialCoordinatingCenterName
        ClinicalTrialProtocolName ClinicalTrialSiteID ClinicalTrialSiteName ClinicalTrialTimePointID
        ConceptualVolumeCombinationDescription ConceptualVolumeDescription ConsultingPhysicianName
        DeviceAlternateIdentifier FillerOrderNumberImagingServiceRequest FractionationNotes
        IssuerOfTheContainerIdentifierSequence IssuerOfTheSpecimenIdentifierSequence
        ManufacturerDeviceIdentifier ParticipationDateTime PatientBirthDate PatientName PatientSex
        PlacerOrderNumberImagingServiceRequest PrescriptionNotes PrescriptionNotesSequence
        ROIInterpreter ROIName RTAccessoryDeviceSlotID RTAccessoryHolderSlotID
        RTPhysicianIntentNarrative RadiationGenerationModeDescription ReasonForSuperseding
        ReferringPhysicianName ReviewDate ReviewTime SourceOfPreviousValues
        SpecimenPreparationSequence StructureSetDate StructureSetTime StudyDate StudyID StudyTime
        TreatmentTechniqueNotes VerifyingObserverIdentificationCodeSequence
    """,
    "D": """
        AcquisitionFieldOfViewLabel AnnotationGroupLabel AnnotationGroupUID AssertionDateTime
        AttributeModificationDateTime BeamHoldTransitionDateTime CertificateOfSigner
        ClinicalTrialProtocolEthicsCommitteeName ClinicalTrialProtocolID ClinicalTrialSponsorName
        ClinicalTrialSubjectID ClinicalTrialSubjectReadingID ContainerIdentifier ContentSequence
        ContextGroupLocalVersion ContextGroupVersion Date DateTime DecayCorrectionDateTime
        DestinationAE DeviceLabel DigitalSignatureDateTime EffectiveDateTime EncapsulatedDocument
        EntityLabel EntityLongLabel ExclusionStartDateTime FlowIdentifier FlowIdentifierSequence
        FrameAcquisitionDateTime FrameOriginTimestamp FrameReferenceDateTime FunctionalSyncPulse
        GraphicAnnotationSequence HangingProtocolCreationDateTime ImpedanceMeasurementDateTime
        InformationIssueDateTime InterlockDateTime InterlockDescription InterlockOriginDescription
        ModifyingSystem OverrideDateTime PersonIdentificationCodeSequence PersonName RTPlanLabel
        RTPrescriptionLabel RTToleranceSetLabel RadiationDoseIdentificationLabel
        RadiationDoseInVivoMeasurementLabel RadiationGenerationModeLabel
        ReasonForTheAttributeModification RecordedRTControlPointDateTime ReferencedDateTime
        SafePositionExitDate SafePositionExitTime SafePositionReturnDate SafePositionReturnTime
        SelectorAEValue SelectorASValue SelectorDAValue SelectorDTValue SelectorLOValue
        SelectorLTValue SelectorOBValue SelectorPNValue SelectorSHValue SelectorSTValue
        SelectorTMValue SelectorUNValue SelectorURValue SelectorUTValue SourceEndDateTime
        SourceIdentifier SourceStartDateTime SourceStrengthReferenceDate SourceStrengthReferenceTime
        SpecimenIdentifier StructureSetLabel Time TreatmentControlPointDate
        TreatmentControlPointTime TreatmentPositionGroupLabel TreatmentToleranceViolationDateTime
        TreatmentToleranceViolationDescription UserContentLabel UserContentLongLabel
        VerificationDateTime VerifyingObserverName VerifyingObserverSequence VerifyingOrganization
        XRayDetectorID XRaySourceID
    """,
    "U": """
        AcquisitionUID ConcatenationUID ConceptualVolumeUID ConstituentConceptualVolumeUID DeviceUID
        DigitalSignatureUID DimensionOrganizationUID DoseReferenceUID DosimetricObjectiveUID
        FailedSOPInstanceUIDList FiducialUID FrameOfReferenceUID InstanceCreatorUID
        IrradiationEventUID LargePaletteColorLookupTableUID ManufacturerDeviceClassUID
        MediaStorageSOPInstanceUID MultiplexGroupUID ObservationSubjectUIDTrial ObservationUID
        PaletteColorLookupTableUID PatientSetupUID PresentationDisplayCollectionUID
        PresentationSequenceCollectionUID PyramidUID RTTreatmentPhaseUID
        ReferencedConceptualVolumeUID ReferencedDoseReferenceUID ReferencedDosimetricObjectiveUID
        ReferencedFiducialsUID ReferencedFrameOfReferenceUID
        ReferencedGeneralPurposeScheduledProcedureStepTransactionUID ReferencedObservationUIDTrial
        ReferencedSOPInstanceUID ReferencedSOPInstanceUIDInFile ReferencedTreatmentPositionGroupUID
        RelatedFrameOfReferenceUID RequestedSOPInstanceUID SOPInstanceUID SeriesInstanceUID
        SourceConceptualVolumeUID SourceFrameOfReferenceUID SpecimenUID StorageMediaFileSetUID
        StudyInstanceUID SynchronizationFrameOfReferenceUID TargetUID TemplateExtensionCreatorUID
        TemplateExtensionOrganizationUID TrackingUID TransactionUID TreatmentPositionGroupUID
        TreatmentSessionUID UID
    """,
    "Z/D": """
        ContentCreatorName ContentDate ContentTime ContrastBolusAgent InstructionPerformedDateTime
        PatientID
    """,
    "X/Z": """
        AcquisitionContextSequence AcquisitionDate AcquisitionTime BarcodeValue LabelText
        PatientSexNeutered ReferencedStudySequence RequestedProcedureDescription ReviewerName
        SourceSerialNumber TreatmentMachineName
    """,
    "X/D": """
        AcquisitionDeviceProcessingDescription DateOfLastDetectorCalibration DetectorID
        EndAcquisitionDateTime FirstTreatmentDate InstanceCreationDate IntendedPhaseEndDate
        IntendedPhaseStartDate MostRecentTreatmentDate ObservationDateTime
        OperatorIdentificationSequence ProtocolName RTPlanDate RTPlanTime RTTreatmentApproachLabel
        SeriesDate SeriesTime StartAcquisitionDateTime TimeOfLastDetectorCalibration TreatmentDate
        TreatmentSite TreatmentTime
    """,
    "X/Z/D": """
        AcquisitionDateTime DeviceSerialNumber InstanceCreationTime InstitutionCodeSequence
        InstitutionName OperatorsName ReferencedPerformedProcedureStepSequence StationName
    """,
    "X/Z/U*": """
        ReferencedImageSequence SourceImageSequence
    """,
}

#: Attributes this module removes beyond the table: encrypted copies of the originals.
_EXTRA_REMOVED = ("EncryptedAttributesSequence",)

#: Modalities whose images usually carry burned-in text (refused without BurnedInAnnotation).
BURNED_IN_MODALITIES = frozenset(
    {"US", "IVUS", "XA", "RF", "ES", "XC", "GM", "SM", "OP", "OPM", "PX", "IO", "DOC", "OT", "BDUS"}
)

#: SOP classes whose images usually carry burned-in text: Secondary Capture and video.
BURNED_IN_SOP_CLASS_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture (single- and multi-frame)
    "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic
    "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic
)

#: Encapsulated documents (PDF, CDA, STL, OBJ, MTL): refused whole.
_ENCAPSULATED_PREFIX = "1.2.840.10008.5.1.4.1.1.104."

_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})

#: Kept with the Retain Patient Characteristics option (Table E.1-1, its "K" entries).
_PATIENT_CHARACTERISTICS = frozenset(
    {"PatientAge", "PatientSex", "PatientSexNeutered", "PatientSize", "PatientWeight",
     "PregnancyStatus"}
)  # fmt: skip

_REMOVED_VRS = frozenset({"PN", "DA", "DT", "TM", "AE", "UR", "LT", "ST", "UT"})

#: UIDs that identify a kind of thing, not an instance: never remapped.
_KEPT_UID_KEYWORDS = frozenset(
    {"TransferSyntaxUID", "CodingSchemeUID", "MappingResourceUID",
     "EncryptedContentTransferSyntaxUID", "ImplementationClassUID"}
)  # fmt: skip

_DUMMY = {
    "DA": "19000101",
    "TM": "000000.00",
    "DT": "19000101000000.000000",
    "AS": "000D",
    "DS": "0",
    "IS": "0",
    "CS": "ANONYMIZED",
    "UR": "",
}

METHOD = "DICOM PS3.15 Annex E Basic Profile (healthnft)"
_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
_CHARACTERISTICS_CODE = ("113108", "Retain Patient Characteristics Option")


def _parse_table(text: dict[str, str]) -> dict[int, str]:
    table: dict[int, str] = {}
    for action, block in text.items():
        for keyword in block.split():
            tag = tag_for_keyword(keyword)
            if tag is None:  # pragma: no cover - checked by the tests for every keyword
                raise RuntimeError(f"unknown DICOM keyword in the profile table: {keyword}")
            table[tag] = action
    for keyword in _EXTRA_REMOVED:
        table[tag_for_keyword(keyword)] = "X"
    return table


#: Tag → action, parsed once.
BASIC_PROFILE: dict[int, str] = _parse_table(BASIC_PROFILE_TEXT)


def remap_uid(uid: str, key: bytes) -> str:
    """The new UID for ``uid`` under ``key``: ``2.25.`` + a keyed-hash UUID (PS3.5 B.2)."""
    digest = hmac.new(key, b"healthnft/dicom-uid/v1\x00" + uid.strip().encode(), hashlib.sha256)
    return "2.25." + str(uuid.UUID(bytes=digest.digest()[:16], version=4).int)


class DicomDeidentifier:
    """Applies the Basic Profile to datasets and files with one key (one study, one release).

    ``keep_patient_characteristics`` applies the Retain Patient Characteristics
    option; ``assume_no_burned_in`` vouches for images of the usually-burned-in
    kinds whose BurnedInAnnotation is absent (see the module docstring).
    """

    def __init__(
        self,
        *,
        key: bytes | None = None,
        keep_patient_characteristics: bool = False,
        assume_no_burned_in: bool = False,
    ) -> None:
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            raise ValueError("key must be at least 16 bytes")
        self._key = key if key is not None else secrets.token_bytes(32)
        self.keep_patient_characteristics = keep_patient_characteristics
        self.assume_no_burned_in = assume_no_burned_in

    # -- public ----------------------------------------------------------------------------

    def uid(self, uid: str) -> str:
        """The new UID ``uid`` becomes under this de-identifier's key."""
        return remap_uid(uid, self._key)

    def dataset(self, ds: Dataset, *, label: str = "dataset") -> Dataset:
        """A de-identified copy of ``ds`` (the input is not changed)."""
        self.check(ds, label=label)
        out = copy.deepcopy(ds)
        self._apply(out)
        return out

    def file(self, src: Path, dst: Path, *, label: str | None = None) -> Dataset:
        """De-identify the DICOM file ``src`` into ``dst`` (written atomically; may equal src).

        Pixel data is read from ``src`` only while it is copied into ``dst``.
        Returns the de-identified dataset.
        """
        name = label or src.name
        ds = _read(src, name)
        if not ds.get("SOPClassUID") or not ds.get("SOPInstanceUID"):
            raise InvalidRecord(
                f"{name}: no SOP Class or SOP Instance UID: not a storable instance"
            )
        self.check(ds, label=name)
        self._apply(ds)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".deid-", suffix=".dcm", dir=dst.parent)
        os.close(fd)
        try:
            ds.save_as(tmp, enforce_file_format=True)
            os.replace(tmp, dst)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ds

    def check(self, ds: Dataset, *, label: str = "dataset") -> None:
        """Refuse a dataset whose pixels or payload may show who the patient is."""
        sop_class = str(ds.get("SOPClassUID", "") or "")
        if sop_class.startswith(_ENCAPSULATED_PREFIX) or "EncapsulatedDocument" in ds:
            raise DeidentificationRefused(
                f"{label}: an encapsulated document (PDF, CDA…) cannot be de-identified "
                "by this profile: it may name the patient"
            )
        if not any(t in ds for t in _PIXEL_TAGS):
            return
        burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
        if burned == "YES":
            raise DeidentificationRefused(
                f"{label}: BurnedInAnnotation is YES: the pixels show text (a name, a date) "
                "this profile cannot remove"
            )
        if str(ds.get("RecognizableVisualFeatures", "") or "").strip().upper() == "YES":
            raise DeidentificationRefused(
                f"{label}: RecognizableVisualFeatures is YES: the image may show a face"
            )
        if burned == "" and not self.assume_no_burned_in:
            modality = str(ds.get("Modality", "") or "").strip().upper()
            risky_class = sop_class.startswith(BURNED_IN_SOP_CLASS_PREFIXES)
            if modality in BURNED_IN_MODALITIES or risky_class:
                kind = (
                    f"modality {modality}"
                    if modality in BURNED_IN_MODALITIES
                    else ("a secondary capture or video image")
                )
                raise DeidentificationRefused(
                    f"{label}: BurnedInAnnotation is absent for {kind}, whose pixels often "
                    "carry burned-in text: refused (check the pixels, then pass "
                    "assume_no_burned_in=True)"
                )

    # -- the walk ----------------------------------------------------------------------------

    def _apply(self, ds: Dataset) -> None:
        self._clean(ds)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = METHOD
        codes = [_PROFILE_CODE] + (
            [_CHARACTERISTICS_CODE] if self.keep_patient_characteristics else []
        )
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = "REMOVED"
        ds.file_meta = self._file_meta(ds)

    def _clean(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            tag = BaseTag(tag)
            if tag in _PIXEL_TAGS:
                continue
            group = tag.group
            if tag.is_private or tag.element == 0 or group & 0xFF00 in (0x5000, 0x6000):
                del ds[tag]
                continue
            keyword = keyword_for_tag(tag)
            if not keyword:
                del ds[tag]  # unknown to the dictionary: cannot be judged, so it goes
                continue
            elem = ds[tag]
            action = self._action(tag, keyword, elem)
            if action == "X":
                del ds[tag]
            elif action == "K":
                continue
            elif elem.VR == "SQ":
                if action == "Z":
                    elem.value = Sequence([])
                else:  # D, X/Z/U*, or unlisted: clean each item
                    for item in elem.value:
                        self._clean(item)
            elif action == "Z":
                elem.value = elem.empty_value
            elif action == "U":
                elem.value = self._uids(elem.value)
            elif action == "D":
                elem.value = self._dummy(keyword, elem)
            elif action == "AGE":
                elem.value = _cap_age_string(str(elem.value or ""))

    def _action(self, tag: BaseTag, keyword: str, elem: DataElement) -> str:
        if self.keep_patient_characteristics and keyword in _PATIENT_CHARACTERISTICS:
            return "AGE" if keyword == "PatientAge" else "K"
        if keyword == "PatientID":
            return "D"
        listed = BASIC_PROFILE.get(int(tag))
        if listed is not None:
            if listed == "U":
                return "U" if self._remappable(keyword, elem) else "K"
            if listed in ("X/Z", "X/D", "X/Z/D"):
                return "X"
            if listed == "Z/D":
                return "Z"
            if listed == "X/Z/U*":
                return "SQ" if elem.VR == "SQ" else "X"
            return listed
        vr = elem.VR
        if vr in _REMOVED_VRS:
            return "X"
        if vr == "UI":
            return "U" if self._remappable(keyword, elem) else "K"
        return "KEEP-WALK" if vr == "SQ" else "K"

    @staticmethod
    def _remappable(keyword: str, elem: DataElement) -> bool:
        if keyword.endswith("ClassUID") or keyword in _KEPT_UID_KEYWORDS:
            return False
        values = (
            elem.value
            if isinstance(elem.value, list | pydicom.multival.MultiValue)
            else [elem.value]
        )
        return not all(str(v).startswith("1.2.840.10008.") for v in values if v)

    def _uids(self, value: Any) -> Any:
        if isinstance(value, list | pydicom.multival.MultiValue):
            return [self._uid_or_keep(str(v)) for v in value]
        return self._uid_or_keep(str(value)) if value else value

    def _uid_or_keep(self, uid: str) -> str:
        return uid if uid.startswith("1.2.840.10008.") or not uid else self.uid(uid)

    def _dummy(self, keyword: str, elem: DataElement) -> Any:
        if keyword == "PatientID":
            original = str(elem.value or "")
            if not original:
                return original
            digest = hmac.new(self._key, b"healthnft/dicom-patient/v1\x00" + original.encode(),
                              hashlib.sha256).hexdigest()  # fmt: skip
            return "ANON-" + digest[:16].upper()
        vr = elem.VR
        if vr == "UI":
            return self._uids(elem.value)
        if vr in _DUMMY:
            return _DUMMY[vr]
        if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
            return b"\x00\x00"
        if vr in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"):
            return 0
        return "ANONYMIZED"

    def _file_meta(self, ds: Dataset) -> FileMetaDataset:
        old = getattr(ds, "file_meta", None) or FileMetaDataset()
        meta = FileMetaDataset()
        sop_class = ds.get("SOPClassUID") or old.get("MediaStorageSOPClassUID")
        if sop_class:
            meta.MediaStorageSOPClassUID = sop_class
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        syntax = old.get("TransferSyntaxUID")
        if syntax:
            meta.TransferSyntaxUID = syntax
        meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "PYDICOM " + pydicom.__version__
        return meta


def _cap_age_string(age: str) -> str:
    """An Age String (``095Y``, ``1200M``…) of 90 years or more becomes ``090Y``."""
    age = age.strip().upper()
    if len(age) != 4 or not age[:3].isdigit() or age[3] not in "DWMY":
        return age
    per_year = {"D": 365.25, "W": 52.1775, "M": 12, "Y": 1}[age[3]]
    return "090Y" if int(age[:3]) / per_year >= 90 else age


def _read(src: Path, name: str) -> Dataset:
    try:
        return pydicom.dcmread(src, defer_size="256 KB")
    except FileNotFoundError:
        raise InputNotFound(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputNotFound(f"{name}: is a folder, expected a DICOM file") from None
    except InvalidDicomError:
        raise InvalidRecord(f"{name}: not a DICOM file (no DICM preamble)") from None
    except OSError as exc:
        raise InputNotFound(f"{name}: cannot be read ({exc.strerror})") from None
    except Exception:  # pydicom's parse errors can quote element values
        raise InvalidRecord(f"{name}: not a readable DICOM file") from None


def deidentify_dataset(
    ds: Dataset,
    *,
    key: bytes | None = None,
    keep_patient_characteristics: bool = False,
    assume_no_burned_in: bool = False,
) -> Dataset:
    """A Basic Profile de-identified copy of ``ds``; pass one ``key`` for all files of a study."""
    deid = DicomDeidentifier(key=key, keep_patient_characteristics=keep_patient_characteristics,
                             assume_no_burned_in=assume_no_burned_in)  # fmt: skip
    return deid.dataset(ds)


def deidentify_file(
    src: Path,
    dst: Path,
    *,
    key: bytes | None = None,
    keep_patient_characteristics: bool = False,
    assume_no_burned_in: bool = False,
    label: str | None = None,
) -> Dataset:
    """De-identify the DICOM file ``src`` into ``dst``; pass one ``key`` for a whole study."""
    deid = DicomDeidentifier(key=key, keep_patient_characteristics=keep_patient_characteristics,
                             assume_no_burned_in=assume_no_burned_in)  # fmt: skip
    return deid.file(src, dst, label=label)
